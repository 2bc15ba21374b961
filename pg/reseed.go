package pg

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hatui/hatui/protocol"
)

// ReseedOptions configure a re-seed.
type ReseedOptions struct {
	// Peers are where to look for the master (every other database node).
	Peers []Peer
	// Slot is the replication slot on the master; SlotName(Node) when
	// empty. It is created if missing.
	Slot string
	// Force re-seeds even when the local data is ahead of the master's
	// (after a split brain) or is another database cluster: the local
	// data is kept as a fallback image, but it stops being served.
	Force bool
	// AllowOtherSystem re-seeds local data of another database cluster
	// (the agent's automatic re-seed of data that cannot stream).
	AllowOtherSystem bool
	// Reason says why the re-seed runs, for the journal and messages.
	Reason string
	// SpaceSample is how long the master's WAL rate is sampled for the
	// space estimate; 1 s when zero, none when negative.
	SpaceSample time.Duration
	// MaxRate limits the copy (pg_basebackup --max-rate, e.g. "50M"), so a
	// re-seed over a WAN or from a busy master does not starve it.
	MaxRate string
	// KeepFiles are carried over from the previous data directory;
	// DefaultKeepFiles when nil, none when empty.
	KeepFiles []string
	// WaitStreaming bounds the wait for the new standby to stream; 2 min
	// when zero.
	WaitStreaming time.Duration
	// Progress receives every step with an overall percentage that never
	// decreases; the copy runs from 5 to 90 %.
	Progress func(protocol.Progress)
}

// ReseedResult describes a finished re-seed.
type ReseedResult struct {
	Master   string
	Timeline uint32
	// Previous is the replaced data directory, now a fallback image; nil
	// when there was none.
	Previous *Image
	Took     time.Duration
	// Space is the estimate the copy was checked against; Pruned the
	// images pruned first to make room.
	Space  *SpaceCheck
	Pruned []Image
}

// ReseedPlan is what a re-seed would do, decided before anything is
// touched: the master, its state, the local position and whether the copy
// fits.
type ReseedPlan struct {
	Master       Peer
	MasterStatus *Status
	// Local is the local data's position; nil when there is none.
	Local *Position
	// Space is nil when it could not be estimated (SpaceNote says why).
	Space     *SpaceCheck
	SpaceNote string
}

// String says what the re-seed would do, for a dry run.
func (p *ReseedPlan) String() string {
	s := fmt.Sprintf("would re-seed from %s (timeline %d at %s; local %s)", p.Master.Node, p.MasterStatus.Timeline, p.MasterStatus.CurrentLSN, describeLocal(p.Local))
	switch {
	case p.Space == nil:
		s += "; " + p.SpaceNote
	case p.Space.Fits():
		s += "; " + p.Space.String()
	default:
		s += "; " + p.Space.String() + "; " + p.Space.pruneNote()
	}
	return s
}

// Reseed rebuilds this standby from the master. The order of events,
// each recorded in the journal before it starts:
//
//  1. Checks, touching nothing: exactly one reachable master among the
//     peers, with this data directory's system identifier; this instance
//     is not a running master; its WAL is not ahead of the master's
//     (unless Force).
//  2. The local server is stopped (fast).
//  3. pg_basebackup -X stream -R -S slot [-C] copies the master into a
//     sibling directory, connecting with application_name=Node.
//  4. Node-specific configuration files are carried over, then the data
//     directory is renamed into the image store (a fallback image) and
//     the copy renamed into its place.
//  5. The server starts; success is when it streams on the master's
//     timeline and the master lists it in pg_stat_replication.
//
// A failure before step 4 rolls back: the copy is deleted and the server
// restarted as it was. If the process dies, Recover says what happened
// and what it will do. A refusal is a *RefusedError and changes nothing.
func (in *Instance) Reseed(ctx context.Context, opts ReseedOptions) (*ReseedResult, error) {
	start := time.Now()
	lk, err := in.startOp(OpReseed)
	if err != nil {
		return nil, err
	}
	defer lk.unlock()
	plan, err := in.PlanReseed(ctx, opts)
	if err != nil {
		return nil, err
	}
	master, ms, local := plan.Master, plan.MasterStatus, plan.Local
	t, err := in.begin(ctx, OpReseed, opts.Progress)
	if err != nil {
		return nil, err
	}
	res := &ReseedResult{Master: master.Node, Timeline: ms.Timeline, Space: plan.Space}
	if sc := plan.Space; sc != nil && !sc.Fits() {
		// Only what rotation removes at the end anyway, and only now that
		// every check passed.
		for _, img := range sc.Prune {
			if err := in.Images().remove(img); err != nil {
				return nil, fmt.Errorf("re-seed of %s: pruning fallback images to make room: %w (nothing was stopped)", in.Node, err)
			}
			res.Pruned = append(res.Pruned, img)
		}
		t.report("check", 1, sc.pruneNote())
	}
	t.master = &master
	t.waitStreaming = opts.WaitStreaming
	slot := opts.Slot
	if slot == "" {
		slot = SlotName(in.Node)
	}
	t.j.Master, t.j.MasterSystemID, t.j.MasterTimeline, t.j.Slot = master.Node, ms.SystemID, ms.Timeline, slot
	note := fmt.Sprintf("master %s on timeline %d at %s; local %s", master.Node, ms.Timeline, ms.CurrentLSN, describeLocal(local))
	if opts.Reason != "" {
		note = opts.Reason + "; " + note
	}
	if plan.Space != nil {
		note += "; " + plan.Space.String()
	} else {
		note += "; " + plan.SpaceNote
	}
	if err := t.checked(note); err != nil {
		return nil, err
	}
	if err := t.stop(ctx); err != nil {
		return nil, err
	}
	exists, err := waitSlotFree(ctx, master, slot)
	if err != nil {
		return nil, t.rollBack(ctx, opts.Peers, fmt.Errorf("re-seed of %s: %w", in.Node, err))
	}
	t.j.SlotCreated = !exists
	if err := t.startCopy("copying from " + master.Node); err != nil {
		return nil, t.rollBack(ctx, opts.Peers, err)
	}
	ci, _ := ParseConnInfo(master.ConnInfo)
	args := []string{"-D", t.j.NewDir, "-X", "stream", "-R", "-S", slot, "-c", "fast"}
	if !exists {
		args = append(args, "-C")
	}
	if opts.MaxRate != "" {
		args = append(args, "--max-rate", opts.MaxRate)
	}
	onStart := func(pid int) {
		t.j.CopyPID = pid
		_ = t.jw.write()
	}
	onProgress := func(p copyProgress) {
		msg := fmt.Sprintf("%d kB copied", p.DoneKB)
		if p.TotalKB > 0 {
			msg = fmt.Sprintf("%d/%d kB copied from %s", p.DoneKB, p.TotalKB, master.Node)
		}
		t.report("copy", 5+0.85*p.Percent, msg)
	}
	if err := in.basebackup(ctx, ci.With("application_name", in.Node), args, onStart, onProgress); err != nil {
		return nil, t.rollBack(ctx, opts.Peers, fmt.Errorf("re-seed of %s from %s failed while copying: %w", in.Node, master.Node, err))
	}
	if err := t.complete(ctx, opts.KeepFiles, opts.Peers); err != nil {
		return nil, err
	}
	res.Took = time.Since(start)
	if t.j.HadData {
		imgs, _ := in.Images().List()
		for _, img := range imgs {
			if img.Dir == t.j.PreviousDir {
				res.Previous = &img
			}
		}
	}
	return res, nil
}

func describeLocal(p *Position) string {
	if p == nil {
		return "has no data"
	}
	return p.String()
}

// PlanReseed makes every refusal decision of a re-seed, the space check
// included, before anything is touched: a refusal changes nothing. It is
// what a dry run shows.
func (in *Instance) PlanReseed(ctx context.Context, opts ReseedOptions) (*ReseedPlan, error) {
	const op = OpReseed
	plan := &ReseedPlan{}
	running, err := in.Running(ctx)
	if err != nil {
		return nil, err
	}
	if running {
		s, err := in.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("re-seed of %s: the server runs but does not answer: %w (stop it first)", in.Node, err)
		}
		if s.Role == RoleMaster {
			return nil, refuse(op, in.Node, ReasonIsMaster, false,
				"re-seed only standbys; to rebuild this node, switch the master role to another node first",
				"%s is the running master (timeline %d)", in.Node, s.Timeline)
		}
		p := s.Position(in.Node)
		plan.Local = &p
	} else if had, err := in.hasData(); err != nil {
		return nil, err
	} else if had {
		// Unreadable data has no position; a re-seed is what repairs it.
		if p, err := in.Position(ctx); err == nil {
			plan.Local = &p
		}
	}
	plan.Master, plan.MasterStatus, err = FindMaster(ctx, op, in.Node, opts.Peers)
	if err != nil {
		return nil, err
	}
	master, ms, local := plan.Master, plan.MasterStatus, plan.Local
	if local != nil && local.SystemID != ms.SystemID && !opts.Force && !opts.AllowOtherSystem {
		return nil, refuse(op, in.Node, ReasonSystemMismatch, true,
			"check the peer list; if the master was rebuilt on purpose, re-seed with force (the local data is kept as a fallback image)",
			"master %s is another database cluster (system identifier %s, local %s)", master.Node, ms.SystemID, local.SystemID)
	}
	mpos := ms.Position(master.Node)
	if local != nil && local.SystemID == ms.SystemID && local.Ahead(mpos) && !opts.Force {
		return nil, refuse(op, in.Node, ReasonLocalAhead, true,
			"the local data has changes the master lacks (split brain?): save what is needed, then re-seed with force; the local data is kept as a fallback image",
			"local %s is ahead of master %s (%s)", local, master.Node, mpos)
	}
	sample := opts.SpaceSample
	if sample == 0 {
		sample = time.Second
	}
	sc, err := in.CheckSpace(ctx, master, opts.MaxRate, max(0, sample))
	switch {
	case err != nil:
		plan.SpaceNote = "free space not checked: " + err.Error()
	case !sc.FitsAfterPrune():
		return nil, sc.refusal(op, in.Node)
	default:
		plan.Space = sc
	}
	return plan, nil
}

// waitSlotFree reports whether slot exists on the master, waiting for a
// walsender of the just-stopped standby to let go of it.
func waitSlotFree(ctx context.Context, master Peer, slot string) (bool, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := QueryStatus(ctx, master.ConnInfo)
		if err != nil {
			return false, fmt.Errorf("reading slots on %s: %w", master.Node, err)
		}
		var found *Slot
		for i := range s.Slots {
			if s.Slots[i].Name == slot {
				found = &s.Slots[i]
			}
		}
		if found == nil {
			return false, nil
		}
		if found.Type != "physical" {
			return false, fmt.Errorf("slot %q on %s is a %s slot: name another slot", slot, master.Node, found.Type)
		}
		if !found.Active {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("replication slot %q on %s is in use by process %d: another standby uses this name (set a distinct slot)", slot, master.Node, found.ActivePID)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// basebackup runs pg_basebackup with progress. The copy must die with
// this process: one that nobody waits for goes on filling the disk and
// holds the replication slot. pg_basebackup -X stream forks a WAL
// receiver that a parent-death signal on pg_basebackup would not reach,
// so it runs under a shell in a process group of its own; the shell gets
// SIGTERM when this process dies (or the context ends) and kills the
// whole group.
//
// A password in conn goes to pg_basebackup through PGPASSWORD, not its
// command line, which every local user can read in /proc.
func (in *Instance) basebackup(ctx context.Context, conn ConnInfo, args []string, onStart func(pid int), onProgress func(copyProgress)) error {
	password, hasPassword := conn["password"]
	if hasPassword {
		conn = conn.Without("password")
	}
	args = append(args, "-d", conn.String(), "-P", "-v")
	script := `trap 'kill -KILL 0' TERM HUP INT; "$@" & wait $!; exit $?`
	cmd, err := in.command(ctx, "/bin/sh", append([]string{"-c", script, "pg_basebackup", in.bin("pg_basebackup")}, args...)...)
	if err != nil {
		return err
	}
	if hasPassword {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+password)
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting pg_basebackup: %w", err)
	}
	if onStart != nil {
		onStart(cmd.Process.Pid)
	}
	var mu sync.Mutex
	var lines []string
	scanProgress(stderr, func(p copyProgress) {
		if onProgress != nil {
			onProgress(p)
		}
	}, func(l string) {
		mu.Lock()
		lines = append(lines, l)
		if len(lines) > 20 {
			lines = lines[1:]
		}
		mu.Unlock()
	})
	err = cmd.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pg_basebackup cancelled: %w", ctx.Err())
		}
		var msgs []string
		for _, l := range lines {
			if strings.Contains(l, "error") || strings.Contains(l, "FATAL") || strings.Contains(l, "could not") {
				msgs = append(msgs, strings.TrimSpace(l))
			}
		}
		if len(msgs) == 0 && len(lines) > 0 {
			msgs = lines[max(0, len(lines)-3):]
		}
		return fmt.Errorf("pg_basebackup: %w: %s", err, strings.Join(msgs, "; "))
	}
	return nil
}
