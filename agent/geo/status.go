package geo

import (
	"time"

	"github.com/hatui/hatui/protocol"
)

// Geo and service role words in [protocol.GeoSite]. The arbitrator's
// words are added to the two the protocol documents.
const (
	RolePrimary    = "primary"
	RoleBackup     = "backup"
	RoleArbitrator = "arbitrator"
	RoleServing    = "serving"
	RoleStandby    = "standby"
	RoleNone       = "none"
)

// Status is this agent's view of the geo state, for the console. On an
// agent cut off from the majority it is the last state it learned.
func (m *Manager) Status() protocol.Geo {
	st := m.fsm.state()
	now := time.Now()
	g := protocol.Geo{
		Mode: string(m.cfg.Mode),
		Ticket: protocol.Ticket{
			Name:        m.cfg.Ticket,
			Holder:      st.Holder,
			Term:        st.Term,
			LeaseExpiry: st.LeaseExpiry,
		},
	}
	if st.Initialized {
		g.Mode, g.Ticket.Name = string(st.Mode), st.Ticket
	}
	if st.Pending != nil {
		g.Pending = pf(st.Pending)
	}
	if _, id := m.raft.LeaderWithID(); id != "" {
		g.Leader = string(id)
	}
	var reach map[string]bool
	if m.deps.Reachable != nil {
		reach = m.deps.Reachable()
	}
	sites := st.Sites
	if !st.Initialized {
		sites = m.cfg.sites()
	}
	role := m.getRole()
	for _, s := range sites {
		gs := protocol.GeoSite{
			Name:       s.Name,
			Arbitrator: s.Arbitrator,
			Reachable:  s.Name == m.cfg.Site || reach == nil || reach[s.Name],
		}
		switch {
		case s.Arbitrator:
			gs.GeoRole, gs.ServiceRole = RoleArbitrator, RoleNone
		default:
			gs.GeoRole = RoleBackup
			if st.holds(s.Name, now) {
				gs.GeoRole = RolePrimary
			}
			serving := s.Serving
			if s.Name == m.cfg.Site && role != roleUnknown {
				// This agent knows better than the record: it may have
				// stopped by itself without reaching a majority.
				serving = role == roleServing
			}
			gs.ServiceRole = RoleStandby
			if serving {
				gs.ServiceRole = RoleServing
			}
		}
		g.Sites = append(g.Sites, gs)
	}
	for _, f := range st.History {
		g.History = append(g.History, f.protocol())
	}
	return g
}

// State returns a copy of this agent's replicated geo state, for
// diagnostics and tests.
func (m *Manager) State() State {
	return *m.fsm.state()
}

// Leader returns the node name of the geo raft leader as this agent knows
// it, or "" when there is none.
func (m *Manager) Leader() string {
	_, id := m.raft.LeaderWithID()
	return string(id)
}
