package pg

import (
	"fmt"
	"net"
	"strconv"

	"github.com/hatui/hatui/protocol"
)

// View is what the agent knows about an instance beyond its own Status:
// its configuration, the master's view of it, its health and any re-seed
// under way. It turns a Status into the console's protocol.Database.
type View struct {
	Node string
	// Geo marks a geo standby (shown as "geo-standby").
	Geo bool
	// Master is the master's Status, when known; a standby's lag is then
	// taken from the master's pg_stat_replication, which is the lag that
	// matters (what the standby has not yet got), not only what it has
	// not yet replayed.
	Master *Status
	// MasterNode names the master, shown as the standby's upstream.
	MasterNode string
	Health     *Health
	Reseed     *protocol.Progress
}

// Database maps the status onto the protocol's Database. Without a
// Health, Healthy only says that the status could be read.
func (s *Status) Database(v View) protocol.Database {
	d := protocol.Database{
		Node:     v.Node,
		Role:     string(s.Role),
		Timeline: int(s.Timeline),
		SystemID: s.SystemID,
		Healthy:  true,
		Reseed:   v.Reseed,
	}
	if v.Health != nil {
		d.Healthy = v.Health.OK
		d.Health = v.Health.Detail
	}
	if s.Role == RoleMaster {
		d.LSN = s.CurrentLSN.String()
		return d
	}
	if v.Geo {
		d.Role = "geo-standby"
	}
	d.LSN = s.ReplayLSN.String()
	if r := s.Receiver; r != nil {
		d.Streaming = r.Status == "streaming"
		d.Slot = r.SlotName
		if r.SenderHost != "" {
			d.Upstream = net.JoinHostPort(r.SenderHost, strconv.Itoa(r.SenderPort))
		}
	}
	if v.MasterNode != "" {
		d.Upstream = v.MasterNode
	}
	if v.Master != nil {
		if row, ok := v.Master.StandbyNamed(v.Node); ok {
			d.LagBytes = row.LagBytes
			if row.ReplayLag != nil {
				sec := row.ReplayLag.Seconds()
				d.LagSeconds = &sec
			}
			return d
		}
	}
	d.LagBytes = s.ReceiveLSN.Sub(s.ReplayLSN)
	// The time since the last replayed commit grows on an idle master
	// too: it is lag only while there is something left to replay.
	if d.LagBytes > 0 && s.ReplayDelay != nil && *s.ReplayDelay > 0 {
		sec := s.ReplayDelay.Seconds()
		d.LagSeconds = &sec
	}
	return d
}

// DownDatabase is the protocol's Database for an instance whose status
// could not be read.
func DownDatabase(v View, err error) protocol.Database {
	d := protocol.Database{Node: v.Node, Role: "down", Reseed: v.Reseed}
	if err != nil {
		d.Health = err.Error()
	}
	if v.Health != nil && v.Health.Detail != "" && err == nil {
		d.Health = v.Health.Detail
	}
	return d
}

// Check maps a health result onto the protocol's Check, for a resource's
// check list. class is "minor", "major" or "fatal" as configured.
func (h Health) Check(name, class string, fails int) protocol.Check {
	return protocol.Check{
		Name: name, Kind: "sql", Class: class, OK: h.OK, Fails: fails,
		Output: h.Detail, At: h.At,
	}
}

// String renders a one-line summary, for logs.
func (h Health) String() string {
	word := "healthy"
	if !h.OK {
		word = "UNHEALTHY"
	}
	return fmt.Sprintf("%s: %s", word, h.Detail)
}
