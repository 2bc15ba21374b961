package pg

import (
	"context"
	"fmt"
	"path/filepath"
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
	// OutcomeReplicating: it already ran as a standby of the master.
	OutcomeReplicating StandbyOutcome = "replicating"
	// OutcomeStarted: its existing standby data was started and streams.
	OutcomeStarted StandbyOutcome = "started"
	// OutcomeReseeded: it was prepared from the master by a re-seed.
	OutcomeReseeded StandbyOutcome = "reseeded"
)

// StandbyOptions configure StartStandby.
type StandbyOptions struct {
	ReseedOptions
	// TryStart is how long existing standby data may take to stream
	// before it is re-seeded instead; 30 s when zero.
	TryStart time.Duration
}

// StandbyResult says what StartStandby did and why.
type StandbyResult struct {
	Outcome StandbyOutcome
	Master  string
	Message string
	Reseed  *ReseedResult
}

// StartStandby is the resource's "start as standby", built for the cold
// start of a whole cluster, when every instance is told to start as a
// standby before any is promoted. A stock agent would prepare a standby
// by wiping it and copying from the master; with no master yet, both
// instances would wipe their data. Here, with no running master the
// instance does nothing at all and says so (OutcomeWaiting). Once one
// instance is promoted, the next call (from the monitor) prepares this one
// from it: its own data is started if it is a clean standby of that
// master, and re-seeded otherwise (the old data kept as a fallback image).
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
	master, ms, err := FindMaster(ctx, op, in.Node, opts.Peers)
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
	try := opts.TryStart
	if try <= 0 {
		try = 30 * time.Second
	}
	why := ""
	if running {
		if ok, _ := streamsFrom(local, ms, in.Node); ok {
			res.Outcome, res.Message = OutcomeReplicating, "already streaming from "+master.Node
			return res, nil
		}
		_, err := in.waitStreaming(ctx, master, try)
		if err == nil {
			res.Outcome, res.Message = OutcomeReplicating, "streaming from "+master.Node
			return res, nil
		}
		why = "the running standby did not stream: " + err.Error()
	} else if ok, reason := in.cleanStandbyOf(ctx, ms, master.Node); ok {
		err := in.Start(ctx)
		if err == nil {
			_, err = in.waitStreaming(ctx, master, try)
			if err == nil {
				res.Outcome, res.Message = OutcomeStarted, "started the existing standby data; streaming from "+master.Node
				return res, nil
			}
		}
		why = "the existing standby data did not stream: " + err.Error()
	} else {
		why = "the existing data cannot simply be started as a standby: " + reason
	}
	rs, err := in.Reseed(ctx, opts.ReseedOptions)
	if err != nil {
		return StandbyResult{}, err
	}
	res.Outcome, res.Reseed = OutcomeReseeded, rs
	res.Message = fmt.Sprintf("%s; prepared from %s by a re-seed, streaming on timeline %d", why, master.Node, rs.Timeline)
	return res, nil
}

// cleanStandbyOf says whether the stopped local data can simply be started
// as a standby of the master: same cluster, stopped in recovery with
// standby.signal, and not ahead of the master.
func (in *Instance) cleanStandbyOf(ctx context.Context, ms *Status, masterNode string) (bool, string) {
	had, err := in.hasData()
	if err != nil || !had {
		return false, "no data directory"
	}
	cd, err := in.ControlData(ctx)
	if err != nil {
		return false, err.Error()
	}
	tl, lsn := cd.Position()
	self := Position{Node: in.Node, SystemID: cd.SystemID, Timeline: tl, LSN: lsn}
	switch {
	case cd.SystemID != ms.SystemID:
		return false, "another database cluster"
	case !cd.WasStandby() || !fileExists(in.DataDir, "standby.signal"):
		return false, "it was not stopped as a standby (state " + cd.State + ")"
	case self.Ahead(ms.Position(masterNode)):
		return false, "it is ahead of the master"
	case fileGone(filepath.Join(in.DataDir, "postgresql.auto.conf")) && fileGone(filepath.Join(in.DataDir, "postgresql.conf")):
		return false, "it has no configuration"
	}
	return true, ""
}
