package pg

import (
	"errors"
	"fmt"

	"github.com/hatui/hatui/protocol"
)

// Reason names why a promote, re-seed or restore was refused. Reasons are
// stable strings: scripts and the console may match on them.
type Reason string

// Refusal reasons.
const (
	// ReasonNotStandby: promote asked of an instance that is already a master.
	ReasonNotStandby Reason = "not-standby"
	// ReasonNotFreshest: another candidate has more of the master's WAL.
	ReasonNotFreshest Reason = "not-freshest"
	// ReasonLagTooHigh: the candidate is further behind the old master than allowed.
	ReasonLagTooHigh Reason = "lag-too-high"
	// ReasonMasterNotFenced: the old master may still be writing.
	ReasonMasterNotFenced Reason = "master-not-fenced"
	// ReasonGeoStandby: geo standbys are promoted only by an operator.
	ReasonGeoStandby Reason = "geo-standby"
	// ReasonIsMaster: re-seed asked of the running master.
	ReasonIsMaster Reason = "is-master"
	// ReasonNoMaster: no peer is a reachable master.
	ReasonNoMaster Reason = "no-master"
	// ReasonManyMasters: more than one peer claims to be master (split brain).
	ReasonManyMasters Reason = "many-masters"
	// ReasonSystemMismatch: the master is a different database cluster.
	ReasonSystemMismatch Reason = "system-id-mismatch"
	// ReasonLocalAhead: the local data has WAL the master lacks.
	ReasonLocalAhead Reason = "local-ahead"
	// ReasonInterrupted: an earlier re-seed or restore did not finish.
	ReasonInterrupted Reason = "interrupted"
	// ReasonBusy: another re-seed or restore holds the instance.
	ReasonBusy Reason = "busy"
	// ReasonLayout: the directories cannot be swapped safely (for example
	// they are on different file systems).
	ReasonLayout Reason = "layout"
	// ReasonNoImage: no fallback image exists to start from.
	ReasonNoImage Reason = "no-image"
	// ReasonNoSpace: the re-seed's copy would not fit beside the data
	// directory, so nothing was stopped.
	ReasonNoSpace Reason = "no-space"
)

// RefusedError says that an operation was not started, why, and what to do.
// Nothing was changed when it is returned. It unwraps to a
// *protocol.Error, so protocol.CodeOf and protocol.AsError give the code
// (refused, or busy) and hint to send to the console unchanged.
type RefusedError struct {
	Op      string // "promote", "re-seed", "restore"
	Node    string
	Reason  Reason
	Message string
	Hint    string
	// Forcible says whether Force would override this refusal.
	Forcible bool
}

// Error implements error.
func (e *RefusedError) Error() string {
	s := fmt.Sprintf("%s of %s refused (%s): %s", e.Op, e.Node, e.Reason, e.Message)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Unwrap gives the protocol form of the refusal.
func (e *RefusedError) Unwrap() error {
	code := protocol.CodeRefused
	if e.Reason == ReasonBusy {
		code = protocol.CodeBusy
	}
	return &protocol.Error{
		Code:    code,
		Message: fmt.Sprintf("%s of %s refused: %s", e.Op, e.Node, e.Message),
		Hint:    e.Hint,
	}
}

// RefusalReason returns the reason of the first *RefusedError in err's
// chain, or "" when err is not a refusal.
func RefusalReason(err error) Reason {
	var r *RefusedError
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

func refuse(op, node string, reason Reason, forcible bool, hint, format string, args ...any) *RefusedError {
	return &RefusedError{Op: op, Node: node, Reason: reason, Message: fmt.Sprintf(format, args...), Hint: hint, Forcible: forcible}
}
