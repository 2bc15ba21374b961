package pg

import (
	"context"
	"fmt"
	"time"
)

// PromoteRequest carries what the decision to promote rests on. The
// caller (the failover logic) knows the cluster; this package checks that
// what it was told allows a promotion.
type PromoteRequest struct {
	// Peers are the other candidates' positions (standbys of the same
	// master that are reachable or whose last position is known). The
	// candidate must be at least as fresh as each of them.
	Peers []Position
	// LastMasterLSN is the old master's last known WAL position; zero
	// when unknown. With MaxLagBytes it bounds the data a promotion loses.
	LastMasterLSN LSN
	// MaxLagBytes is how far behind LastMasterLSN the candidate may be;
	// zero means no limit.
	MaxLagBytes int64
	// OldMasterGone is the caller's statement that the old master is
	// fenced or stopped.
	OldMasterGone bool
	// CheckOldMaster, when set and OldMasterGone is false, is asked
	// whether the old master is fenced or stopped (e.g. by a power
	// switch's outlet state), with a sentence saying how it knows.
	CheckOldMaster func(ctx context.Context) (gone bool, detail string, err error)
	// Force is an operator's override of every refusal except "already a
	// master". Geo standbys are promoted only with it.
	Force bool
	// Wait bounds pg_promote's wait; 60 s when zero.
	Wait time.Duration
}

// CheckPromote decides whether self may be promoted, without side effects
// other than calling req.CheckOldMaster. It returns nil or a
// *RefusedError.
func CheckPromote(ctx context.Context, self Position, node string, geo bool, req PromoteRequest) error {
	const op = "promote"
	if self.Running && !self.Standby {
		return refuse(op, node, ReasonNotStandby, false, "nothing to do: it already is the master",
			"%s is already a master (%s)", node, self)
	}
	if req.Force {
		return nil
	}
	if geo {
		return refuse(op, node, ReasonGeoStandby, true,
			"a geo standby is promoted only by an operator: confirm the geo failover, or promote with force",
			"%s is a geo standby", node)
	}
	if !req.OldMasterGone {
		gone, detail := false, "no fence confirmation was given"
		if req.CheckOldMaster != nil {
			var err error
			gone, detail, err = req.CheckOldMaster(ctx)
			if err != nil {
				detail = fmt.Sprintf("checking the old master failed: %v", err)
				gone = false
			}
		}
		if !gone {
			return refuse(op, node, ReasonMasterNotFenced, true,
				"fence or stop the old master first (power it off, or stop its database), or promote with force if you know it is down",
				"the old master is not known to be fenced or stopped: %s", detail)
		}
	}
	for _, p := range req.Peers {
		if p.SystemID != "" && self.SystemID != "" && p.SystemID != self.SystemID {
			continue // another cluster is not a rival candidate
		}
		if p.Ahead(self) {
			return refuse(op, node, ReasonNotFreshest, true,
				fmt.Sprintf("promote %s instead, or promote %s with force accepting the loss of the difference", p.Node, node),
				"%s is fresher (%s) than %s (%s)", p.Node, p, node, self)
		}
	}
	if req.MaxLagBytes > 0 && req.LastMasterLSN != 0 {
		if lag := req.LastMasterLSN.Sub(self.LSN); lag > req.MaxLagBytes {
			return refuse(op, node, ReasonLagTooHigh, true,
				"bring the old master back so the standby can catch up, or promote with force accepting the loss",
				"%s is %d bytes behind the old master's last position %s (limit %d)", node, lag, req.LastMasterLSN, req.MaxLagBytes)
		}
	}
	return nil
}

// Position reads where this instance's WAL ends: from the server when it
// runs, from the control file when it does not (without starting it).
func (in *Instance) Position(ctx context.Context) (Position, error) {
	up, err := in.Running(ctx)
	if err != nil {
		return Position{}, err
	}
	if up {
		s, err := in.Status(ctx)
		if err != nil {
			return Position{}, err
		}
		return s.Position(in.Node), nil
	}
	cd, err := in.ControlData(ctx)
	if err != nil {
		return Position{}, fmt.Errorf("position of stopped instance %s: %w", in.Node, err)
	}
	tl, lsn := cd.Position()
	return Position{Node: in.Node, SystemID: cd.SystemID, Timeline: tl, LSN: lsn, Standby: cd.WasStandby() || fileExists(in.DataDir, "standby.signal")}, nil
}

// Promote makes this standby the master with pg_promote(wait => true),
// after CheckPromote allows it. A stopped instance is first started from
// its data directory as it is (the cold-start case: the cluster manager
// picked this one to be master). It returns the new master's status,
// whose timeline is the old one plus one.
func (in *Instance) Promote(ctx context.Context, req PromoteRequest) (*Status, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	self, err := in.Position(ctx)
	if err != nil {
		return nil, err
	}
	if err := CheckPromote(ctx, self, in.Node, in.Geo, req); err != nil {
		return nil, err
	}
	if !self.Running {
		if err := in.Start(ctx); err != nil {
			return nil, fmt.Errorf("starting %s to promote it: %w", in.Node, err)
		}
	}
	s, err := in.Status(ctx)
	if err != nil {
		return nil, err
	}
	if s.Role == RoleMaster {
		return s, nil // it was stopped as a master and started as one
	}
	wait := req.Wait
	if wait <= 0 {
		wait = 60 * time.Second
	}
	db, conn, err := open(ctx, in.ConnInfo)
	if err != nil {
		return nil, fmt.Errorf("promoting %s: %w", in.Node, err)
	}
	defer db.Close()
	defer conn.Close()
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_promote(wait => true, wait_seconds => $1)", int(wait.Seconds())).Scan(&ok); err != nil {
		return nil, fmt.Errorf("promoting %s: %w", in.Node, err)
	}
	if !ok {
		return nil, fmt.Errorf("promoting %s: the server did not leave recovery within %s (see its log %s)", in.Node, wait, in.logFile())
	}
	return readStatus(ctx, conn)
}
