package database

import (
	"fmt"
	"time"

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

// rewindable says whether data that cannot stream may be rewound: its
// history left the master's (a former master, cut off or crashed after
// the standby was promoted).
func rewindable(c *pg.Cannot) bool {
	return c != nil && (c.Reason == pg.CannotAhead || c.Reason == pg.CannotHistory)
}

// rewind rejoins a former master as a standby of master with pg_rewind,
// its data first copied aside as a fallback image; the discarded range is
// alerted. When pg_rewind fails, the guarded re-seed is the fallback
// (the data is kept as a fallback image there too).
func (f *Feature) rewind(c *pg.Cannot, master string) {
	var peer pg.Peer
	for _, p := range f.peers {
		if p.Node == master {
			peer = p
		}
	}
	if peer.Node == "" {
		return
	}
	res, err := f.in.Rewind(f.ctx, peer)
	if err != nil {
		if f.ctx.Err() != nil {
			return
		}
		f.alert(protocol.SevWarning, "database-rewind-failed", "pg_rewind failed",
			fmt.Sprintf("database on %s: pg_rewind from %s failed (%v); re-seeding instead, the data is kept as a fallback image", f.node, master, err))
		f.forcedReseed(c, master)
		return
	}
	if err := f.in.Start(f.ctx); err != nil {
		f.alert(protocol.SevCritical, "database-rewind-failed", "rewound data did not start",
			fmt.Sprintf("database on %s: rewound from %s but did not start: %v", f.node, master, err))
		return
	}
	kept := ""
	if res.Image != nil {
		kept = fmt.Sprintf("; its data before the rewind is fallback image %s in %s", res.Image.ID, f.in.Images().Dir)
	}
	msg := fmt.Sprintf("database on %s rejoined as a standby of %s by pg_rewind in %s (%s): %s%s",
		f.node, master, res.Took.Round(time.Millisecond), c.Why, res.Lost(), kept)
	sev := protocol.SevWarning
	if res.LostBytes > 0 {
		sev = protocol.SevCritical
	}
	f.mu.Lock()
	f.decision = msg
	f.mu.Unlock()
	f.h.Audit("rewind "+f.node, "ha-agent", "ok", msg)
	f.alert(sev, "database-rewind", "rejoined by pg_rewind", msg)
}

// forcedReseed re-seeds a former master of the group whose rewind
// failed: its data is kept as a fallback image, as every re-seed keeps it.
func (f *Feature) forcedReseed(c *pg.Cannot, master string) {
	cc := *c
	cc.Automatic = true
	f.autoReseedWith(&cc, master, true)
}
