package database

import (
	"context"
	"fmt"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/protocol"
)

// recover finishes or rolls back what a killed agent left half done: a
// re-seed or restore (pg's journal), then an adoption.
func (f *Feature) recover() {
	plan, err := f.in.Recover(f.ctx)
	switch {
	case err != nil:
		f.event(protocol.SevCritical, "database on %s: checking for an interrupted re-seed failed: %v", f.node, err)
	case plan.Action != pg.ActionNone:
		f.event(protocol.SevWarning, "database on %s: %s", f.node, plan)
		if f.begin("recovery") {
			err = plan.Apply(f.ctx, pg.RecoverOptions{Peers: f.peers, Progress: func(p protocol.Progress) { f.setReseed(&p) }})
			f.end()
			if err != nil {
				f.event(protocol.SevCritical, "database on %s: recovery (%s) failed: %v", f.node, plan.Action, err)
			} else {
				f.event(protocol.SevInfo, "database on %s: recovery done (%s)", f.node, plan.Action)
			}
		}
	}
	msg, err := f.in.RecoverAdopt(f.ctx, f.peers)
	switch {
	case err != nil:
		f.event(protocol.SevCritical, "database on %s: %v", f.node, err)
	case msg != "":
		f.event(protocol.SevWarning, "database on %s: %s", f.node, msg)
	}
}

// coldStart applies the cold-start rule for a node configured as a
// standby: with no master anywhere it does nothing and says so, and it is
// tried again at every monitor tick until a master appears. Data that
// cannot stream is left to onCannot.
func (f *Feature) coldStart() {
	if !f.begin("start as standby") {
		return
	}
	res, err := f.in.StartStandby(f.ctx, pg.StandbyOptions{Peers: f.peers, TryStart: f.opts.TryStart})
	f.end()
	f.mu.Lock()
	wasWaiting := f.waiting
	f.waiting = err == nil && res.Outcome == pg.OutcomeWaiting
	f.mu.Unlock()
	switch {
	case pg.RefusalReason(err) == pg.ReasonIsMaster:
		// Configured as a standby but promoted since: the role is the
		// cluster's decision, not the configuration's.
	case err != nil:
		if f.ctx.Err() == nil {
			f.event(protocol.SevCritical, "database on %s could not start as a standby: %v", f.node, err)
		}
	case res.Outcome == pg.OutcomeWaiting:
		if !wasWaiting {
			f.event(protocol.SevWarning, "database on %s is waiting for a master: %s", f.node, res.Message)
		}
	case res.Outcome == pg.OutcomeNeedsReseed && res.Follow == nil && f.follows && rewindable(res.Cannot):
		// A former master of the group: pg_rewind, not a full copy.
		f.spawn("rewind", func() { f.rewind(res.Cannot, res.Master) })
	case res.Outcome == pg.OutcomeNeedsReseed && res.Follow == nil:
		// Stopped data, judged from its control file: it will not change.
		f.onCannot(res.Cannot, res.Master)
	case res.Outcome == pg.OutcomeNeedsReseed:
		// A running standby: the monitor acts once a second reading agrees.
	case res.Outcome == pg.OutcomeReplicating && !wasWaiting:
		// Already running: the monitor adopts it if it needs to be.
	default:
		f.event(protocol.SevInfo, "database on %s started as a standby (%s): %s", f.node, res.Outcome, res.Message)
	}
}

// poll reads the instance, its peers and its health into the report,
// and acts on what it finds: adopt a standby, re-seed data that cannot
// stream, warn of slots.
func (f *Feature) poll() {
	f.mu.Lock()
	ready := f.ready
	f.mu.Unlock()
	if !ready {
		return
	}
	to := f.cfg.Monitor.Duration
	if to < 5*time.Second {
		to = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(f.ctx, to)
	defer cancel()
	v := pg.View{Node: f.node, Geo: f.cfg.Geo}
	// Our own status first, then the peers': read the other way round,
	// WAL the master writes in between would put a standby ahead of it.
	st, err := f.in.Status(ctx)
	polled := pg.PollPeers(ctx, f.peers)
	if f.ctx.Err() != nil {
		return
	}
	f.notePeers(polled)
	defer f.updateAbsent(polled, st)
	now := time.Now()
	if err != nil {
		f.mu.Lock()
		since := f.lastUp
		if since.IsZero() {
			since = f.started
		}
		v.Since, v.NeedsReseed, v.Notices = &since, f.needs, f.notices()
		f.mu.Unlock()
		d := pg.DownDatabase(v, err)
		f.mu.Lock()
		switch {
		case f.op != "":
			d.Health = f.op + " under way: " + d.Health
		case f.waiting:
			d.Health = "waiting for a master: " + d.Health
		}
		f.role = d.Role
		f.down = true
		f.mu.Unlock()
		f.set(d)
		return
	}
	f.mu.Lock()
	f.lastUp = now
	f.down = false
	promoted := f.role == string(pg.RoleStandby) && st.Role == pg.RoleMaster
	if st.Role == pg.RoleStandby {
		f.recvLSN = max(st.ReceiveLSN, st.ReplayLSN)
	}
	if f.role != string(st.Role) {
		f.role, f.roleSince = string(st.Role), now
	}
	since := f.roleSince
	f.mu.Unlock()
	v.Since = &since
	if promoted {
		f.onPromoted(st)
	}
	if st.Role == pg.RoleStandby {
		if master, ms, err := pg.MasterAmong("monitor", f.node, polled); err == nil {
			v.Master, v.MasterNode = ms, master.Node
			f.mu.Lock()
			f.lastMaster, f.masterLSN = master.Node, ms.CurrentLSN
			f.mu.Unlock()
			f.follow(ctx, st, master, polled, &v)
		} else {
			// No one master to judge it against: no evidence either way.
			f.mu.Lock()
			f.cannot, f.streak = nil, 0
			f.meter.Observe(now, 0, false)
			f.mu.Unlock()
		}
	} else {
		v.Slots = f.slots
		if disk, err := f.in.WALDisk(); err == nil {
			v.WALDisk = disk
		}
		f.mu.Lock()
		f.cannot, f.streak, f.needs = nil, 0, ""
		f.meter.Observe(now, 0, false)
		f.mu.Unlock()
	}
	if f.hq.SQL != "" {
		q := f.hq
		if st.Role != pg.RoleMaster {
			q = q.OnStandby()
		}
		h := q.Check(ctx, f.in.ConnInfo)
		v.Health = &h
	}
	f.mu.Lock()
	v.NeedsReseed, v.Notices = f.needs, f.notices()
	f.mu.Unlock()
	d := st.Database(v)
	f.set(d)
	if st.Role == pg.RoleMaster {
		f.watchSlots(d)
	}
	f.keepSize(ctx)
}

// notices are the agent's own notices for the row.
func (f *Feature) notices() []protocol.Notice {
	if f.adoptFail.at.IsZero() {
		return nil
	}
	return []protocol.Notice{{Severity: protocol.SevWarning,
		Message: "could not adopt the standby as it runs: " + f.adoptFail.err,
		Hint:    fmt.Sprintf("it keeps streaming as it is, and the agent tries again every %s; meanwhile the master may list it under another name, without a slot", f.opts.RetryAfter)}}
}

// follow judges the running standby against the master and acts: adopt
// it when it streams under another name or slot; re-seed it (or say it
// needs one) when its data cannot stream on two readings in a row; else
// leave it, showing its catch-up.
func (f *Feature) follow(ctx context.Context, st *pg.Status, master pg.Peer, polled []pg.PeerStatus, v *pg.View) {
	fl, err := f.in.Assess(ctx, st, master, polled)
	if err != nil {
		return
	}
	v.Follow = &fl
	f.mu.Lock()
	v.CatchUp = f.meter.Observe(time.Now(), fl.BytesBehind, fl.Streams() && fl.CatchingUp)
	switch {
	case fl.Cannot == nil:
		f.streak = 0
	case f.cannot != nil && f.cannot.Reason == fl.Cannot.Reason:
		f.streak++
	default:
		f.streak = 1
	}
	f.cannot = fl.Cannot
	cleared := fl.Cannot == nil && fl.Streams() && f.needs != ""
	if cleared {
		f.needs = ""
	}
	op, streak := f.op, f.streak
	f.mu.Unlock()
	if cleared {
		f.clearAlert("needs-reseed", fmt.Sprintf("database on %s streams from %s again: no re-seed needed", f.node, master.Node))
	}
	if op != "" {
		return
	}
	switch {
	case fl.Cannot != nil && streak >= 2:
		f.onCannot(fl.Cannot, master.Node)
	case fl.Streams() && fl.Upstream == master.Node && !fl.Adopted(f.node, pg.SlotName(f.node)):
		f.adopt(master)
	}
}

// adopt makes the running standby stream under the node's name and slot,
// in the background.
func (f *Feature) adopt(master pg.Peer) {
	f.mu.Lock()
	recent := f.adoptFail.recent(master.Node, f.opts.RetryAfter)
	f.mu.Unlock()
	if recent {
		return
	}
	f.spawn("adoption", func() {
		res, err := f.in.Adopt(f.ctx, master, pg.AdoptOptions{})
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			f.mu.Lock()
			f.adoptFail = failure{key: master.Node, at: time.Now(), err: err.Error()}
			f.mu.Unlock()
			f.event(protocol.SevWarning, "database on %s: could not adopt the running standby (it keeps streaming as it is; tried again in %s): %v", f.node, f.opts.RetryAfter, err)
			return
		}
		f.mu.Lock()
		f.adoptFail = failure{}
		f.mu.Unlock()
		if len(res.Changes) == 0 {
			return
		}
		msg := fmt.Sprintf("database on %s: adopted the running standby of %s as it is, no copy and no restart: %s", f.node, master.Node, res)
		f.event(protocol.SevInfo, "%s", msg)
		f.h.Audit("adopt "+f.node, "ha-agent", "ok", res.String())
	})
}

// onCannot acts on evidence that the data cannot stream from master: a
// re-seed by itself when allowed and automatic, else "needs re-seed".
func (f *Feature) onCannot(c *pg.Cannot, master string) {
	key := string(c.Reason)
	switch {
	case !c.Automatic:
		f.setNeeds(c, c.Why+" (it holds WAL the master lacks: only an operator re-seeds it, with force; its data is then kept as a fallback image)")
		return
	case !f.cfg.AutoReseedAllowed():
		f.setNeeds(c, c.Why+" (automatic re-seeds are off: auto_reseed = false)")
		return
	}
	f.mu.Lock()
	recent := f.autoFail.recent(key, f.opts.RetryAfter)
	f.mu.Unlock()
	if recent {
		return
	}
	f.spawn("re-seed", func() { f.autoReseed(c, master) })
}

// setNeeds shows "needs re-seed: why" and alerts once per reason.
func (f *Feature) setNeeds(c *pg.Cannot, why string) {
	f.mu.Lock()
	f.needs = why
	f.mu.Unlock()
	f.alertOnce("needs-reseed", string(c.Reason), protocol.SevWarning, "database-needs-reseed", "needs a re-seed",
		fmt.Sprintf("database on %s needs a re-seed and waits for an operator: %s", f.node, why))
}

// autoReseed re-seeds the standby by itself because its data cannot
// stream, with a warning and an alert before and after.
func (f *Feature) autoReseed(c *pg.Cannot, master string) { f.autoReseedWith(c, master, false) }

// autoReseedWith is autoReseed; force re-seeds data ahead of the master
// (a former master whose rewind failed).
func (f *Feature) autoReseedWith(c *pg.Cannot, master string, force bool) {
	f.alert(protocol.SevWarning, "database-reseed", "re-seeding by itself",
		fmt.Sprintf("database on %s cannot stream from %s: %s; re-seeding it by itself (auto_reseed); its current data is kept as a fallback image in %s",
			f.node, master, c.Why, f.in.Images().Dir))
	f.h.Audit("reseed "+f.node, "ha-agent", "started", c.Why)
	res, err := f.in.Reseed(f.ctx, pg.ReseedOptions{
		Peers: f.peers, MaxRate: f.cfg.MaxRate, Reason: "automatic re-seed: " + c.Why,
		AllowOtherSystem: c.Reason == pg.CannotOtherSystem, Force: force,
		Progress: func(p protocol.Progress) { f.setReseed(&p) },
	})
	if err != nil {
		if f.ctx.Err() != nil {
			return // closing: the re-seed rolled back
		}
		f.mu.Lock()
		f.autoFail = failure{key: string(c.Reason), at: time.Now(), err: err.Error()}
		f.needs = c.Why + "; the automatic re-seed did not succeed: " + err.Error()
		f.mu.Unlock()
		f.h.Audit("reseed "+f.node, "ha-agent", "failed", err.Error())
		f.alert(protocol.SevCritical, "database-reseed-failed", "automatic re-seed failed",
			fmt.Sprintf("database on %s: the automatic re-seed failed (tried again in %s): %v", f.node, f.opts.RetryAfter, err))
		return
	}
	kept := "there was no data to keep"
	if res.Previous != nil {
		kept = fmt.Sprintf("its previous data is fallback image %s in %s", res.Previous.ID, f.in.Images().Dir)
	}
	for _, img := range res.Pruned {
		kept += "; pruned older image " + img.ID + " first to make room"
	}
	msg := fmt.Sprintf("database on %s re-seeded by itself from %s in %s because %s; %s",
		f.node, res.Master, res.Took.Round(time.Millisecond), c.Why, kept)
	f.mu.Lock()
	f.needs, f.cannot, f.streak, f.autoFail = "", nil, 0, failure{}
	f.mu.Unlock()
	f.clearAlert("needs-reseed", "")
	f.h.Audit("reseed "+f.node, "ha-agent", "ok", msg)
	f.alert(protocol.SevWarning, "database-reseed", "re-seeded by itself", msg)
}

// watchSlots warns of slots past the threshold and alerts before pg_wal's
// file system fills, once per condition.
func (f *Feature) watchSlots(d protocol.Database) {
	var retained int64
	for _, sl := range d.Slots {
		retained += sl.RetainedBytes
		cond := "slot:" + sl.Name
		if !sl.Warning {
			f.clearAlert(cond, fmt.Sprintf("replication slot %s on %s is back under its warning threshold", sl.Name, f.node))
			continue
		}
		who := sl.Node
		if who == "" {
			who = "its standby"
		}
		f.alertOnce(cond, "", protocol.SevWarning, "database-slot", "slot "+sl.Name+" holds WAL",
			fmt.Sprintf("replication slot %s on %s holds %s of WAL, past its warning threshold: %s is not consuming it (down, or far behind); it grows until %s comes back or the slot is dropped",
				sl.Name, f.node, pg.Bytes(sl.RetainedBytes), who, who))
	}
	disk := d.WALDisk
	if disk == nil || retained == 0 || disk.UsedPercent < f.slots.DiskAlertPercent {
		f.clearAlert("wal-disk", "")
		return
	}
	f.alertOnce("wal-disk", "", protocol.SevCritical, "database-wal-disk", "pg_wal's disk is filling",
		fmt.Sprintf("pg_wal's file system on %s is %.0f%% full (%s free) while replication slots hold %s: bring the absent standby back, drop its slot, or make room before it passes 80 %%; a full pg_wal stops the master and every call",
			f.node, disk.UsedPercent, pg.Bytes(disk.FreeBytes), pg.Bytes(retained)))
}

// keepSize applies max_slot_wal_keep_size from the configuration, checked
// once a minute (an operator may change it by hand meanwhile).
func (f *Feature) keepSize(ctx context.Context) {
	n, ok := f.cfg.MaxSlotWALKeepBytes()
	if !ok {
		return
	}
	f.mu.Lock()
	due := time.Since(f.keepSet) > time.Minute
	if due {
		f.keepSet = time.Now()
	}
	f.mu.Unlock()
	if !due {
		return
	}
	changed, err := f.in.SetMaxSlotWALKeepSize(ctx, n)
	switch {
	case err != nil:
		f.event(protocol.SevWarning, "database on %s: %v", f.node, err)
	case changed:
		f.event(protocol.SevInfo, "database on %s: set max_slot_wal_keep_size to %s ([database] max_slot_wal_keep_size)", f.node, f.cfg.MaxSlotWALKeepSize)
	}
}
