package pg

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
)

// RecoveryAction is what Recover will do about an interrupted operation.
type RecoveryAction string

// Recovery actions.
const (
	// ActionNone: there is nothing to recover.
	ActionNone RecoveryAction = "none"
	// ActionWait: another live process is running the operation.
	ActionWait RecoveryAction = "wait"
	// ActionRollBack: undo; the previous data directory stays in place.
	ActionRollBack RecoveryAction = "roll-back"
	// ActionResume: the new data directory is complete; finish the job.
	ActionResume RecoveryAction = "resume"
	// ActionManual: the state cannot be told apart safely; nothing will be
	// done automatically.
	ActionManual RecoveryAction = "manual"
)

// RecoveryPlan says what happened to an interrupted re-seed or restore and
// what Apply will do about it. Recover only reads; Apply acts.
type RecoveryPlan struct {
	Journal *Journal
	Action  RecoveryAction
	// Happened and Will are sentences for the operator and the audit log.
	Happened string
	Will     string
	// PreviousIntact says the previous data directory was found whole
	// (never modified by the operation), at PreviousAt.
	PreviousIntact bool
	PreviousAt     string

	in *Instance
}

// RecoverOptions are what Apply needs beyond the journal: peers to find
// the master (to drop a slot, or to verify streaming after a resume).
type RecoverOptions struct {
	Peers         []Peer
	KeepFiles     []string
	WaitStreaming time.Duration
	Progress      func(protocol.Progress)
}

// Recover inspects the journal of an interrupted re-seed or restore (left
// by a process that was killed or crashed) and the directories it names,
// and says what happened and what it will do. It changes nothing. The
// agent calls it at start, logs the plan, and calls Apply.
func (in *Instance) Recover(ctx context.Context) (*RecoveryPlan, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	p := &RecoveryPlan{in: in}
	j, err := readJournal(in.journalPath())
	if err != nil {
		p.Action = ActionManual
		p.Happened = fmt.Sprintf("a journal exists but cannot be trusted: %v", err)
		p.Will = "nothing: inspect " + in.journalPath() + " and the directories beside " + in.DataDir + ", then remove the journal by hand"
		p.PreviousIntact = !fileGone(filepath.Join(in.DataDir, "PG_VERSION"))
		p.PreviousAt = in.DataDir
		return p, nil
	}
	if j == nil {
		p.Action = ActionNone
		p.Happened = "no re-seed or restore was interrupted"
		p.Will = "nothing"
		p.PreviousIntact, p.PreviousAt = true, in.DataDir
		return p, nil
	}
	p.Journal = j
	if lk, err := lock(in.lockPath()); errors.Is(err, errLocked) {
		p.Action = ActionWait
		p.Happened = fmt.Sprintf("a %s of %s is running now (step %q)", j.Op, j.Node, j.Step)
		p.Will = "nothing: it is not interrupted; wait for it"
		return p, nil
	} else if err == nil {
		lk.unlock()
	}
	// Find the previous data directory by its inode, wherever it is.
	switch {
	case !j.HadData:
		p.PreviousIntact = true
	case sameInode(j.DataDir, j.OldInode):
		p.PreviousIntact, p.PreviousAt = true, j.DataDir
	case j.PreviousDir != "" && sameInode(j.PreviousDir, j.OldInode):
		p.PreviousIntact, p.PreviousAt = true, j.PreviousDir
	}
	what := fmt.Sprintf("the %s of %s started %s by process %d", j.Op, j.Node, j.Started.Local().Format(time.RFC3339), j.PID)
	source := "from " + j.Master
	if j.Op == OpRestore {
		source = "from fallback image " + j.Image
	}
	prev := "the previous data directory " + j.DataDir + " is intact"
	if !j.HadData {
		prev = "there was no previous data directory"
	} else if !p.PreviousIntact {
		prev = "the previous data directory was NOT found where the journal says"
	}
	restart := ""
	if j.WasRunning {
		restart = ", restart the server on the previous data directory (it was running)"
	}
	finish := "start the server and wait until it streams from the master"
	if j.Op == OpRestore {
		finish = "start the server and wait until it answers"
	}
	switch j.Step {
	case StepChecked, StepStopped:
		p.Action = ActionRollBack
		p.Happened = fmt.Sprintf("%s was interrupted at step %q, before any copy was made; %s", what, j.Step, prev)
		p.Will = "roll back: delete any empty copy directory" + restart + ", and forget the journal"
	case StepCopying:
		p.Action = ActionRollBack
		pid := ""
		if j.CopyPID > 0 {
			pid = fmt.Sprintf(" (copy process %d)", j.CopyPID)
		}
		p.Happened = fmt.Sprintf("%s was interrupted while copying %s into %s%s; the copy is incomplete; %s", what, source, j.NewDir, pid, prev)
		var steps []string
		if j.CopyPID > 0 {
			steps = append(steps, "stop the copy if it still runs")
		}
		steps = append(steps, "delete the incomplete copy "+j.NewDir)
		if j.SlotCreated {
			steps = append(steps, fmt.Sprintf("drop replication slot %q on %s (this re-seed created it)", j.Slot, j.Master))
		}
		p.Will = "roll back: " + strings.Join(steps, ", ") + restart + ", and forget the journal"
	case StepCopied:
		p.Action = ActionResume
		p.Happened = fmt.Sprintf("%s was interrupted after the copy %s completed, before the swap; %s", what, source, prev)
		p.Will = fmt.Sprintf("resume: keep the previous data directory as fallback image %s, move the copy into place, %s", filepath.Base(j.PreviousDir), finish)
	case StepSwapping:
		cur := "neither directory"
		switch {
		case sameInode(j.DataDir, j.NewInode):
			cur = "the new copy"
		case sameInode(j.DataDir, j.OldInode):
			cur = "the previous data directory still"
		case fileGone(j.DataDir):
			cur = "empty (between the two renames)"
		}
		if cur == "neither directory" || (j.HadData && !p.PreviousIntact) || (!sameInode(j.DataDir, j.NewInode) && !sameInode(j.NewDir, j.NewInode)) {
			p.Action = ActionManual
			p.Happened = fmt.Sprintf("%s was interrupted while swapping directories, and the directories are not where the journal says (%s holds %s)", what, j.DataDir, cur)
			p.Will = "nothing: compare " + j.DataDir + ", " + j.NewDir + " and " + j.PreviousDir + " by hand"
			return p, nil
		}
		p.Action = ActionResume
		p.Happened = fmt.Sprintf("%s was interrupted while swapping directories: %s holds %s; %s", what, j.DataDir, cur, prev)
		p.Will = "resume: finish the swap, " + finish
	case StepSwapped:
		p.Action = ActionResume
		p.Happened = fmt.Sprintf("%s was interrupted after the swap: the new data directory is in place and the previous one is fallback image %s", what, filepath.Base(j.PreviousDir))
		p.Will = "resume: " + finish
		if j.Op == OpReseed {
			p.Will += " (if it was promoted since, only forget the journal: it serves as a master, and is not started again)"
		}
	case StepDone:
		p.Action = ActionResume
		p.Happened = fmt.Sprintf("%s had finished; only its journal was left", what)
		p.Will = "prune fallback images and forget the journal"
	}
	return p, nil
}

// String renders the plan in two sentences.
func (p *RecoveryPlan) String() string {
	return fmt.Sprintf("%s. Will %s.", p.Happened, p.Will)
}

// Apply carries out the plan. A manual or wait plan returns a refusal;
// none does nothing.
func (p *RecoveryPlan) Apply(ctx context.Context, opts RecoverOptions) error {
	in := p.in
	switch p.Action {
	case ActionNone:
		return nil
	case ActionManual, ActionWait:
		reason := ReasonInterrupted
		if p.Action == ActionWait {
			reason = ReasonBusy
		}
		return refuse("recover", in.Node, reason, false, p.Will, "%s", p.Happened)
	}
	lk, err := in.lockOp("recover")
	if err != nil {
		return err
	}
	defer lk.unlock()
	j, err := readJournal(in.journalPath())
	if err != nil || j == nil || j.Step != p.Journal.Step || !j.Started.Equal(p.Journal.Started) {
		return fmt.Errorf("recover of %s: the journal changed since the plan was made: make a new plan", in.Node)
	}
	t := &txn{in: in, j: j, jw: &journalWriter{path: in.journalPath(), j: j}, progress: opts.Progress, waitStreaming: opts.WaitStreaming}
	if p.Action == ActionRollBack {
		return t.rollBack(ctx, opts.Peers, nil)
	}
	return t.complete(ctx, opts.KeepFiles, opts.Peers)
}

func sameInode(path string, ino uint64) bool {
	if ino == 0 {
		return false
	}
	got, err := inode(path)
	return err == nil && got == ino
}
