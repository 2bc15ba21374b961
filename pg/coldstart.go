package pg

import (
	"context"
	"fmt"
	"time"
)

// StandbyOutcome is what StartStandby did.
type StandbyOutcome string

// Outcomes of StartStandby.
const (
	// OutcomeWaiting: there is no master to replicate from, so nothing
	// was done: no file touched, no server started. The resource reports
	// itself started as a standby (as silhouette's agent returns
	// OCF_SUCCESS) and StartStandby is called again on every monitor.
	OutcomeWaiting StandbyOutcome = "waiting-for-master"
	// OutcomeReplicating: it already ran as a standby that streams from
	// the master (catching up counts).
	OutcomeReplicating StandbyOutcome = "replicating"
	// OutcomeNotStreaming: it runs as a standby that does not stream, but
	// nothing shows that its data cannot: it is left as it is.
	OutcomeNotStreaming StandbyOutcome = "not-streaming"
	// OutcomeStarted: its existing data was started as a standby.
	OutcomeStarted StandbyOutcome = "started"
	// OutcomeNeedsReseed: its data cannot stream from the master (Cannot
	// says why). Nothing was done: whether to re-seed is the caller's
	// decision.
	OutcomeNeedsReseed StandbyOutcome = "needs-reseed"
)

// StandbyOptions configure StartStandby.
type StandbyOptions struct {
	// Peers are where to look for the master (every other database node).
	Peers []Peer
	// Slot is the replication slot a former master's data uses once made
	// a standby; SlotName(Node) when empty.
	Slot string
	// TryStart is how long data just started is watched before
	// StartStandby says how it follows; 30 s when zero. A standby that is
	// slow to stream is reported, never replaced.
	TryStart time.Duration
}

// StandbyResult says what StartStandby did and why.
type StandbyResult struct {
	Outcome StandbyOutcome
	Master  string
	Message string
	// Follow is how the running standby follows the master, when read.
	Follow *Follow
	// Cannot is why the data cannot stream (OutcomeNeedsReseed).
	Cannot *Cannot
}

// StartStandby is the resource's "start as standby", built for the cold
// start of a whole cluster, when every instance is told to start as a
// standby before any is promoted. A stock agent would prepare a standby
// by wiping it and copying from the master; with no master yet, both
// instances would wipe their data. Here, with no running master the
// instance does nothing at all and says so (OutcomeWaiting). Once one
// instance is promoted, the next call (from the monitor) looks at this
// one's data: a running standby is left running, whatever its name or
// lag; stopped data whose history is on the master's is started as a
// standby (a former master's is made one first); data that cannot stream
// is reported (OutcomeNeedsReseed) and left untouched.
func (in *Instance) StartStandby(ctx context.Context, opts StandbyOptions) (StandbyResult, error) {
	const op = "start as standby"
	if err := in.validate(); err != nil {
		return StandbyResult{}, err
	}
	if err := in.refuseInterrupted(op); err != nil {
		return StandbyResult{}, err
	}
	running, err := in.Running(ctx)
	if err != nil {
		return StandbyResult{}, err
	}
	var local *Status
	if running {
		if local, err = in.Status(ctx); err != nil {
			return StandbyResult{}, err
		}
		if local.Role == RoleMaster {
			return StandbyResult{}, refuse(op, in.Node, ReasonIsMaster, false,
				"demote it first: stop it and re-seed it from the new master, or make it the master",
				"%s runs as a master", in.Node)
		}
	}
	polled := PollPeers(ctx, opts.Peers)
	master, ms, err := MasterAmong(op, in.Node, polled)
	if RefusalReason(err) == ReasonNoMaster {
		msg := "no running master among the peers: did nothing, the data directory is untouched; it will be prepared from the master once one is promoted"
		if running {
			msg = "no running master among the peers: left the running standby as it is until a master appears"
		}
		return StandbyResult{Outcome: OutcomeWaiting, Message: msg + " (" + err.(*RefusedError).Message + ")"}, nil
	}
	if err != nil {
		return StandbyResult{}, err
	}
	res := StandbyResult{Master: master.Node}
	if running {
		f, err := in.Assess(ctx, local, master, polled)
		if err != nil {
			return StandbyResult{}, err
		}
		return res.from(f), nil
	}
	c, note, err := in.AssessStopped(ctx, master, ms)
	if err != nil {
		return StandbyResult{}, err
	}
	if c != nil {
		res.Outcome, res.Cannot = OutcomeNeedsReseed, c
		res.Message = "the data cannot stream from " + master.Node + ": " + c.Why + "; nothing was done"
		return res, nil
	}
	made := ""
	if !fileExists(in.DataDir, "standby.signal") {
		slot := opts.Slot
		if slot == "" {
			slot = SlotName(in.Node)
		}
		if _, err := ensureSlot(ctx, master, slot, nil); err != nil {
			return StandbyResult{}, err
		}
		if err := writeStandbyConfig(in.DataDir, in.Node, master.ConnInfo, slot, in.OSUser); err != nil {
			return StandbyResult{}, fmt.Errorf("making the data of %s a standby of %s: %w", in.Node, master.Node, err)
		}
		made = fmt.Sprintf("its data was not a standby's, but its history is on %s's: made it a standby of %s (standby.signal, primary_conninfo, slot %s); ", master.Node, master.Node, slot)
	}
	if note != "" {
		made += note + "; "
	}
	if err := in.Start(ctx); err != nil {
		return StandbyResult{}, err
	}
	try := opts.TryStart
	if try <= 0 {
		try = 30 * time.Second
	}
	f, err := in.watchFollow(ctx, master, opts.Peers, try)
	if err != nil {
		return StandbyResult{}, err
	}
	res = res.from(f)
	res.Outcome = OutcomeStarted
	res.Message = made + "started the existing data as a standby; " + res.Message
	return res, nil
}

// from fills the result from how the running standby follows.
func (res StandbyResult) from(f Follow) StandbyResult {
	res.Follow = &f
	switch {
	case f.Cannot != nil:
		res.Outcome, res.Cannot = OutcomeNeedsReseed, f.Cannot
		res.Message = "the data cannot stream from " + f.Master + ": " + f.Cannot.Why + "; nothing was done"
	case f.Streams() && f.CatchingUp:
		res.Outcome = OutcomeReplicating
		res.Message = fmt.Sprintf("streaming from %s, catching up (%s behind): left to catch up", f.Upstream, Bytes(f.BytesBehind))
	case f.Streams():
		res.Outcome, res.Message = OutcomeReplicating, "streaming from "+f.Upstream
	default:
		res.Outcome = OutcomeNotStreaming
		res.Message = "not streaming: " + f.Why + "; left as it is (its data can follow " + f.Master + ")"
	}
	return res
}

// watchFollow reads how the running standby follows the master until it
// streams, its data is known unable to, or wait passes, and returns the
// last reading.
func (in *Instance) watchFollow(ctx context.Context, master Peer, peers []Peer, wait time.Duration) (Follow, error) {
	deadline := time.Now().Add(wait)
	var last Follow
	var lastErr error
	for {
		// The standby first, then the master: read the other way round,
		// WAL written in between would make the standby look ahead.
		s, err := in.Status(ctx)
		if err == nil {
			last, err = in.Assess(ctx, s, master, PollPeers(ctx, peers))
		}
		lastErr = err
		if err == nil && (last.Streams() || last.Cannot != nil) {
			return last, nil
		}
		if time.Now().After(deadline) {
			if lastErr != nil && last.Master == "" {
				return last, lastErr
			}
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
