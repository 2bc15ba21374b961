package pg

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

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
	// Follow is how a standby follows the master, when assessed: its row
	// on the master is found by name or address, not by name alone.
	Follow *Follow
	Health *Health
	Reseed *protocol.Progress
	// CatchUp is the standby's progress while it catches up.
	CatchUp *protocol.CatchUp
	// NeedsReseed says why the data cannot stream while the agent waits
	// for an operator to re-seed it.
	NeedsReseed string
	// Since is when the role began.
	Since *time.Time
	// Slots judges a master's replication slots.
	Slots SlotPolicy
	// WALDisk is the file system of a master's pg_wal.
	WALDisk *protocol.Disk
	// Notices are the agent's own (an adoption that failed...).
	Notices []protocol.Notice
}

// SlotPolicy says how a master's replication slots are judged.
type SlotPolicy struct {
	// WarnBytes is the WAL a slot may hold before it is warned about.
	// When zero, WarnFraction of the room WAL has is used: the free space
	// of pg_wal's file system plus what the slots already hold.
	WarnBytes    int64
	WarnFraction float64 // 0.25 when zero
	// DiskAlertPercent is how full pg_wal's file system may be before an
	// alert, while slots hold WAL; 75 when zero, so the alert comes
	// before it passes 80 %.
	DiskAlertPercent float64
	// Nodes maps slot names to the standbys they serve.
	Nodes map[string]string
}

// Threshold is the retained WAL past which a slot is warned about, given
// the file system of pg_wal (nil when unknown) and what the slots hold.
func (p SlotPolicy) Threshold(disk *protocol.Disk, retained int64) int64 {
	if p.WarnBytes > 0 || disk == nil {
		return p.WarnBytes
	}
	f := p.WarnFraction
	if f <= 0 {
		f = 0.25
	}
	return int64(f * float64(disk.FreeBytes+retained))
}

func (p SlotPolicy) diskAlert() float64 {
	if p.DiskAlertPercent > 0 {
		return p.DiskAlertPercent
	}
	return 75
}

// Database maps the status onto the protocol's Database. Without a
// Health, Healthy only says that the status could be read.
func (s *Status) Database(v View) protocol.Database {
	d := protocol.Database{
		Node:        v.Node,
		Role:        string(s.Role),
		Timeline:    int(s.Timeline),
		SystemID:    s.SystemID,
		Healthy:     true,
		Reseed:      v.Reseed,
		Since:       v.Since,
		CatchUp:     v.CatchUp,
		NeedsReseed: v.NeedsReseed,
	}
	if v.Health != nil {
		d.Healthy = v.Health.OK
		d.Health = v.Health.Detail
	}
	if s.Role == RoleMaster {
		d.LSN = s.CurrentLSN.String()
		s.masterSlots(&d, v)
		d.Notices = append(d.Notices, v.Notices...)
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
	if f := v.Follow; f != nil && f.Upstream != "" {
		d.Upstream = f.Upstream
	}
	standbyNotices(&d, v)
	d.Notices = append(d.Notices, v.Notices...)
	row, ok := Standby{}, false
	switch {
	case v.Follow != nil && v.Follow.Row != nil && v.Follow.Upstream == v.MasterNode:
		row, ok = *v.Follow.Row, true
	case v.Master != nil:
		row, ok = v.Master.StandbyNamed(v.Node)
	}
	if ok {
		d.LagBytes = row.LagBytes
		if row.ReplayLag != nil {
			sec := row.ReplayLag.Seconds()
			d.LagSeconds = &sec
		}
		return d
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

// standbyNotices says what an operator should know of a standby that
// does not simply stream.
func standbyNotices(d *protocol.Database, v View) {
	f := v.Follow
	switch {
	case v.NeedsReseed != "":
		d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevCritical,
			Message: "needs re-seed: " + v.NeedsReseed,
			Hint: fmt.Sprintf("re-seed it when ready (hatui --exec 'reseed %s' --yes): its data is kept as a fallback image; "+
				"the agent does not do it by itself here", v.Node)})
	case f == nil || v.Reseed != nil:
	case f.Cannot != nil:
		// The agent decides what to do; until it does, say why.
		d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevWarning,
			Message: "cannot stream from " + f.Master + ": " + f.Cannot.Why})
	case v.CatchUp != nil:
		// CatchUp says it all: nothing to do, it is left to catch up.
	case !f.Streams():
		d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevWarning,
			Message: "not streaming: " + f.Why,
			Hint:    fmt.Sprintf("check primary_conninfo, pg_hba.conf on %s, the network and the standby's server log; its data can follow %s, so it is not re-seeded for this", f.Master, f.Master)})
	}
}

// masterSlots fills a master's slots, its pg_wal file system and what an
// operator should do about them.
func (s *Status) masterSlots(d *protocol.Database, v View) {
	d.WALDisk = v.WALDisk
	var retained int64
	for _, sl := range s.Slots {
		if sl.Type == "physical" && !sl.Temporary {
			retained += sl.RetainedBytes
		}
	}
	limit := v.Slots.Threshold(v.WALDisk, retained)
	for _, sl := range s.Slots {
		if sl.Temporary {
			continue // a running base backup's: it goes when the copy ends
		}
		ps := protocol.ReplicationSlot{Name: sl.Name, Node: v.Slots.Nodes[sl.Name], Active: sl.Active,
			RetainedBytes: sl.RetainedBytes, WALStatus: sl.WALStatus, SafeBytes: sl.SafeWALSize}
		if ps.Node == "" {
			for _, r := range s.Standbys {
				if sl.ActivePID != 0 && r.PID == sl.ActivePID {
					ps.Node = r.ApplicationName
				}
			}
		}
		who := sl.Name
		if ps.Node != "" {
			who = fmt.Sprintf("%s (%s)", sl.Name, ps.Node)
		}
		standby := ps.Node
		if standby == "" {
			standby = "its standby"
		}
		switch {
		case sl.WALStatus == "lost":
			d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevCritical,
				Message: fmt.Sprintf("slot %s lost WAL its standby needs (max_slot_wal_keep_size)", who),
				Hint:    fmt.Sprintf("%s must be re-seeded; then drop this slot if nothing uses it", standby)})
		case limit > 0 && sl.RetainedBytes > limit:
			ps.Warning = true
			state := "inactive"
			hint := fmt.Sprintf("start %s so it consumes the WAL; if it is gone for good, drop the slot (SELECT pg_drop_replication_slot('%s') on %s): it then needs a re-seed",
				standby, sl.Name, v.Node)
			if sl.Active {
				state = "active but far behind"
				hint = fmt.Sprintf("%s streams slowly: check its link and disk", standby)
			}
			d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevWarning,
				Message: fmt.Sprintf("slot %s, %s, holds %s of WAL (warning past %s)", who, state, Bytes(sl.RetainedBytes), Bytes(limit)),
				Hint:    hint})
		}
		d.Slots = append(d.Slots, ps)
	}
	sort.Slice(d.Slots, func(i, j int) bool { return d.Slots[i].Name < d.Slots[j].Name })
	if len(d.Slots) > 0 && s.MaxSlotWALKeepSize < 0 {
		d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevWarning,
			Message: "max_slot_wal_keep_size is unlimited: a standby that stays away lets its slot fill pg_wal's file system",
			Hint:    "set max_slot_wal_keep_size in [database] (the agent applies it) or in postgresql.conf; a standby past it needs a re-seed, a full disk stops every call"})
	}
	if disk := v.WALDisk; disk != nil && retained > 0 && disk.UsedPercent >= v.Slots.diskAlert() {
		d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevCritical,
			Message: fmt.Sprintf("pg_wal's file system is %.0f%% full (%s free); replication slots hold %s", disk.UsedPercent, Bytes(disk.FreeBytes), Bytes(retained)),
			Hint:    "act before it passes 80 %: bring the absent standby back, drop its slot, or make room; a full pg_wal stops the master and every call"})
	}
}

// DownDatabase is the protocol's Database for an instance whose status
// could not be read.
func DownDatabase(v View, err error) protocol.Database {
	d := protocol.Database{Node: v.Node, Role: "down", Reseed: v.Reseed, Since: v.Since, NeedsReseed: v.NeedsReseed}
	if err != nil {
		d.Health = err.Error()
	}
	if v.Health != nil && v.Health.Detail != "" && err == nil {
		d.Health = v.Health.Detail
	}
	standbyNotices(&d, v)
	d.Notices = append(d.Notices, v.Notices...)
	return d
}

// Absent is what one agent knows of a peer's instance while the peer's
// own agent does not report it.
type Absent struct {
	Node string
	// SeenBy is the agent that reports the row.
	SeenBy string
	Geo    bool
	// Status is the instance as just read directly; nil when it did not
	// answer (Err says why).
	Status *Status
	Err    error
	// Last is its last known position, seen at LastSeen (zero: never).
	Last     *Position
	LastSeen time.Time
	// Agent says what is known of the peer's agent ("failed", "left").
	Agent      string
	AgentSince time.Time
}

// Database is the row an agent shows for an absent peer: the instance as
// read directly when it answers, otherwise "down" with its last known
// position and since when (or "unknown" when it was never seen).
func (a Absent) Database() protocol.Database {
	agent := "its agent does not report"
	if a.Agent != "" {
		agent = fmt.Sprintf("its agent is %s", a.Agent)
	}
	if !a.AgentSince.IsZero() {
		agent += " since " + a.AgentSince.Local().Format(time.DateTime)
	}
	if a.Status != nil {
		d := a.Status.Database(View{Node: a.Node, Geo: a.Geo})
		d.SeenBy = a.SeenBy
		d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevWarning,
			Message: agent + "; read directly by " + a.SeenBy,
			Hint:    "start ha-agent on " + a.Node})
		return d
	}
	d := protocol.Database{Node: a.Node, Role: "unknown", SeenBy: a.SeenBy}
	if a.Err != nil {
		d.Health = a.Err.Error()
	}
	if a.Last != nil {
		d.LSN, d.Timeline, d.SystemID = a.Last.LSN.String(), int(a.Last.Timeline), a.Last.SystemID
	}
	msg := "never reached"
	if !a.LastSeen.IsZero() {
		d.Role = "down"
		since := a.LastSeen
		d.Since = &since
		msg = "down since " + since.Local().Format(time.DateTime)
	}
	if a.Err != nil {
		msg += " (" + a.Err.Error() + ")"
	}
	msg += "; " + agent
	if a.Last != nil {
		msg += "; last known at " + a.Last.String()
	}
	d.Notices = append(d.Notices, protocol.Notice{Severity: protocol.SevCritical, Message: msg,
		Hint: "start PostgreSQL and ha-agent on " + a.Node + "; meanwhile its slot on the master keeps the WAL it needs (see the master's slots)"})
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
