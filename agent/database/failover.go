package database

import (
	"fmt"

	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/protocol"
)

// InFailoverGroup says whether the node's failover group holds its
// database (a [[failover.resource]] of type "database"): the group's
// holder runs the master, and the feature makes every other node's
// instance follow it.
func InFailoverGroup(c *config.Config) bool {
	if !c.Failover.Enabled || !c.Database.Enabled {
		return false
	}
	for _, r := range c.Failover.Resources {
		if r.Type == "database" {
			return true
		}
	}
	return false
}

// onPromoted records a promotion of this node's standby, by the failover
// group or by an operator: the new timeline, the position it was promoted
// at, the last known position of the old master and the bytes known to
// be lost, in the event log, the audit log and an alert.
func (f *Feature) onPromoted(st *pg.Status) {
	f.mu.Lock()
	lastMaster, masterLSN, at := f.lastMaster, f.masterLSN, f.recvLSN
	f.mu.Unlock()
	lost := "nothing lost"
	if masterLSN != 0 && masterLSN > at {
		lost = fmt.Sprintf("%s behind %s's last known position %s lost", pg.Bytes(masterLSN.Sub(at)), lastMaster, masterLSN)
	} else if masterLSN == 0 {
		lost = "the old master's last position is not known"
	}
	msg := fmt.Sprintf("promoted %s at %s, timeline %d: %s", f.node, at, st.Timeline, lost)
	if lastMaster != "" && masterLSN != 0 {
		msg += fmt.Sprintf(" (old master %s last seen at %s)", lastMaster, masterLSN)
	}
	f.mu.Lock()
	f.decision = msg
	f.mu.Unlock()
	f.h.Audit("database promoted "+f.node, "failover", "ok", msg)
	f.alert(protocol.SevWarning, "database-promoted", "database promoted", msg)
}
