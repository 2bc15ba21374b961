package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hatui/hatui/pg/internal/runas"
	"github.com/hatui/hatui/protocol"
)

// A txn replaces the data directory with a new one built beside it: a
// re-seed (new one from pg_basebackup) or a restore (new one copied from a
// fallback image). Its invariant: the previous data directory is never
// deleted or written to by this package; until the new one is complete it
// stays at its path, and after the swap it is a fallback image.
type txn struct {
	in       *Instance
	jw       *journalWriter
	j        *Journal
	progress func(protocol.Progress)
	last     float64
	// master is the peer a re-seed copied from; nil for a restore.
	master *Peer
	// waitStreaming bounds the wait for a re-seeded standby to stream.
	waitStreaming time.Duration
}

// lockOp takes the instance's operation lock or refuses as busy.
func (in *Instance) lockOp(op string) (*lockFile, error) {
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(in.DataDir)), 0o755); err != nil {
		return nil, fmt.Errorf("%s of %s: %w", op, in.Node, err)
	}
	lk, err := lock(in.lockPath())
	if errors.Is(err, errLocked) {
		return nil, refuse(op, in.Node, ReasonBusy, false,
			"wait for it to finish; the console shows its progress",
			"another re-seed, restore or image of %s is running", in.Node)
	}
	return lk, err
}

// startOp checks the instance, takes its operation lock and refuses to
// start over an unfinished operation: the opening of every operation
// that changes the data directory or its settings. The caller unlocks.
func (in *Instance) startOp(op string) (*lockFile, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	lk, err := in.lockOp(op)
	if err != nil {
		return nil, err
	}
	if err := in.refuseInterrupted(op); err != nil {
		lk.unlock()
		return nil, err
	}
	return lk, nil
}

// rolledBack is a roll back's outcome: cause with what was done, or, with
// no cause, an error only when something could not be undone.
func rolledBack(cause error, incomplete bool, msg string) error {
	switch {
	case cause != nil:
		return fmt.Errorf("%w; %s", cause, msg)
	case incomplete:
		return errors.New(msg)
	}
	return nil
}

// refuseInterrupted refuses to start over an unfinished operation.
func (in *Instance) refuseInterrupted(op string) error {
	j, err := readJournal(in.journalPath())
	if err != nil {
		return refuse(op, in.Node, ReasonInterrupted, false,
			"inspect the journal and the directories beside the data directory, then remove the journal by hand",
			"an unreadable journal of an earlier operation exists: %v", err)
	}
	if j != nil {
		return refuse(op, in.Node, ReasonInterrupted, false,
			"run recover first (the agent does at start): it says what happened and rolls back or resumes",
			"a %s started %s by process %d stopped at step %q", j.Op, j.Started.Format(time.RFC3339), j.PID, j.Step)
	}
	return nil
}

// begin fills a journal for a new operation without writing it, and makes
// sure the previous data directory can become an image by rename.
func (in *Instance) begin(ctx context.Context, op string, progress func(protocol.Progress)) (*txn, error) {
	now := time.Now().UTC()
	stamp := now.Format("20060102T150405.000Z")
	had, err := in.hasData()
	if err != nil {
		return nil, err
	}
	running, err := in.Running(ctx)
	if err != nil {
		return nil, err
	}
	store := in.Images()
	if err := ensureDirOwned(store.Dir, in.OSUser); err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(in.DataDir))
	pdev, err1 := device(parent)
	idev, err2 := device(store.Dir)
	if err1 != nil || err2 != nil || pdev != idev {
		return nil, refuse(op, in.Node, ReasonLayout, false,
			"put the images directory on the same file system as the data directory (ImagesDir)",
			"fallback images in %s are not on the file system of %s, so the previous data directory cannot be kept by rename", store.Dir, parent)
	}
	j := &Journal{
		Version: JournalVersion, Op: op, Node: in.Node, PID: os.Getpid(),
		DataDir: filepath.Clean(in.DataDir), NewDir: in.sibling(".new-" + stamp),
		HadData: had, WasRunning: running, Started: now,
	}
	if had {
		id := newImageID(ImagePrevious, now)
		j.PreviousDir = filepath.Join(store.Dir, id)
		if j.OldInode, err = inode(in.DataDir); err != nil {
			return nil, err
		}
	}
	return &txn{in: in, j: j, jw: &journalWriter{path: in.journalPath(), j: j}, progress: progress}, nil
}

// report sends overall progress; percent never goes backwards.
func (t *txn) report(step string, pct float64, msg string) {
	pct = max(t.last, min(100, pct))
	t.last = pct
	if t.progress != nil {
		t.progress(protocol.Progress{Step: step, Message: msg, Percent: pct})
	}
}

// checked records that every check passed.
func (t *txn) checked(note string) error {
	if err := t.jw.set(StepChecked, note); err != nil {
		return err
	}
	t.report("check", 2, note)
	return nil
}

// stop stops the local server if it runs. On failure it rolls back (the
// server is started again if it went down after all).
func (t *txn) stop(ctx context.Context) error {
	if t.j.WasRunning {
		t.report("stop", 3, "stopping the local server (fast shutdown)")
		if err := t.in.Stop(ctx); err != nil {
			return t.rollBack(ctx, nil, fmt.Errorf("%s of %s: %w", t.j.Op, t.in.Node, err))
		}
	}
	return t.jw.set(StepStopped, fmt.Sprintf("server was running: %v", t.j.WasRunning))
}

// startCopy creates the new sibling directory and records that copying
// begins.
func (t *txn) startCopy(note string) error {
	if err := mkdirOwned(t.j.NewDir, t.in.OSUser); err != nil {
		return err
	}
	ino, err := inode(t.j.NewDir)
	if err != nil {
		return err
	}
	t.j.NewInode = ino
	// Journal first: progress a watcher sees is never ahead of what a
	// restarted agent will find on disk.
	if err := t.jw.set(StepCopying, note); err != nil {
		return err
	}
	t.report("copy", 5, note)
	return nil
}

// stopAndPrepare is checked, stop and startCopy for operations with no
// step of their own in between. It rolls back what it did on failure.
func (t *txn) stopAndPrepare(ctx context.Context, note string) error {
	if err := t.checked(note); err != nil {
		return err
	}
	if err := t.stop(ctx); err != nil {
		return err
	}
	if err := t.startCopy(note); err != nil {
		return t.rollBack(ctx, nil, err)
	}
	return nil
}

// rollBack undoes an operation that has not swapped: the incomplete copy
// is deleted, a slot the re-seed created is dropped, the server is started
// again if it was running, and the journal is removed. The previous data
// directory was never touched, so it is simply still there.
func (t *txn) rollBack(ctx context.Context, peers []Peer, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	var done, failed []string
	if stopLeftoverCopy(t.j.NewDir) {
		done = append(done, "stopped the leftover pg_basebackup")
	}
	if ino, err := inode(t.j.NewDir); err == nil {
		if ino != t.j.NewInode && t.j.NewInode != 0 {
			failed = append(failed, fmt.Sprintf("left %s alone: it is not the directory this %s created", t.j.NewDir, t.j.Op))
		} else if err := os.RemoveAll(t.j.NewDir); err != nil {
			failed = append(failed, fmt.Sprintf("could not delete the incomplete copy %s: %v", t.j.NewDir, err))
		} else {
			done = append(done, "deleted the incomplete copy "+t.j.NewDir)
		}
	}
	if t.j.SlotCreated && t.j.Slot != "" {
		if msg, err := t.dropSlot(ctx, peers); err != nil {
			failed = append(failed, err.Error())
		} else if msg != "" {
			done = append(done, msg)
		}
	}
	if t.j.WasRunning {
		if err := t.in.Start(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("could not restart the server: %v", err))
		} else {
			done = append(done, "restarted the server on the previous data directory")
		}
	}
	if len(failed) == 0 {
		if err := t.jw.remove(); err != nil {
			failed = append(failed, err.Error())
		}
	}
	msg := "rolled back, previous data directory intact"
	if len(done) > 0 {
		msg += ": " + strings.Join(done, "; ")
	}
	if len(failed) > 0 {
		msg += "; NOT DONE (journal kept for recover): " + strings.Join(failed, "; ")
	}
	return rolledBack(cause, len(failed) > 0, msg)
}

// dropSlot drops the slot this re-seed created on the master, unless a
// standby is using it by now.
func (t *txn) dropSlot(ctx context.Context, peers []Peer) (string, error) {
	master := t.master
	for i := range peers {
		if master == nil && peers[i].Node == t.j.Master {
			master = &peers[i]
		}
	}
	if master == nil {
		return "", fmt.Errorf("could not drop replication slot %q on %s: no connection string for it (drop it by hand, or it keeps WAL on the master)", t.j.Slot, t.j.Master)
	}
	// dropSlot waits briefly for the killed copy's walsender to go.
	return dropSlot(ctx, *master, t.j.Slot)
}

// stopLeftoverCopy kills every pg_basebackup still writing into newDir
// (normally none: see basebackup), found by its command line so that a
// reused pid is never hit. It reports whether it found one.
func stopLeftoverCopy(newDir string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "pg_basebackup" {
			continue
		}
		for _, a := range args {
			if a == newDir {
				var pid int
				if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil && pid != os.Getpid() {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			// Gone, or a zombie waiting for init: either way it writes no more.
			if err != nil || strings.Contains(string(b), ") Z ") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return len(pids) > 0
}

// complete takes an operation from wherever its journal says to the end:
// carry over configuration, swap, start, verify, prune, forget.
func (t *txn) complete(ctx context.Context, keepFiles []string, peers []Peer) error {
	j := t.j
	if stepOrder[j.Step] < stepOrder[StepCopied] {
		if j.HadData {
			if err := carryFiles(j.DataDir, j.NewDir, keepFiles, t.in.OSUser); err != nil {
				return t.rollBack(ctx, peers, fmt.Errorf("%s of %s: carrying configuration over: %w", j.Op, t.in.Node, err))
			}
		}
		if err := t.jw.set(StepCopied, "the new data directory is complete"); err != nil {
			return err
		}
	}
	if stepOrder[j.Step] < stepOrder[StepSwapped] {
		t.report("swap", 90, "swapping the new data directory in")
		if err := t.swap(); err != nil {
			return fmt.Errorf("%s of %s: %w (run recover: it resumes from the journal)", j.Op, t.in.Node, err)
		}
	}
	if stepOrder[j.Step] < stepOrder[StepDone] && t.promotedSince(ctx) {
		// The failover group promoted the new standby while the last
		// step waited (its master died meanwhile): the data serves, as
		// a master. Starting it again here would start a second master
		// once another node has been promoted since; rejoining is the
		// cold-start rule's work.
		if err := t.jw.set(StepDone, "promoted since the swap"); err != nil {
			return err
		}
	}
	if stepOrder[j.Step] < stepOrder[StepDone] {
		t.report("start", 92, "starting the server on the new data directory")
		if err := t.in.Start(ctx); err != nil {
			return fmt.Errorf("%s of %s: the new data directory is in place and the previous one is the fallback image %s, but the server did not start: %w (fix the cause, then run recover to resume, or restore the image)",
				j.Op, t.in.Node, filepath.Base(j.PreviousDir), err)
		}
		if err := t.verify(ctx, peers); err != nil {
			return fmt.Errorf("%s of %s: the new data directory is in place and running, but %w (run recover to wait again)", j.Op, t.in.Node, err)
		}
		if err := t.jw.set(StepDone, "verified"); err != nil {
			return err
		}
	}
	if _, err := t.in.Images().Prune(); err != nil {
		return fmt.Errorf("%s of %s succeeded, but pruning fallback images failed: %w", j.Op, t.in.Node, err)
	}
	t.report("done", 100, j.Op+" complete")
	return t.jw.remove()
}

// promotedSince says whether a re-seeded data directory, swapped in, has
// been promoted since: it runs as a master, or it is stopped without the
// standby.signal the copy was made with.
func (t *txn) promotedSince(ctx context.Context) bool {
	if t.j.Op != OpReseed || t.j.Step != StepSwapped {
		return false
	}
	if s, err := t.in.Status(ctx); err == nil {
		return s.Role == RoleMaster
	}
	if up, err := t.in.Running(ctx); err != nil || up {
		return false // running but not answering yet: let verify wait
	}
	return !fileExists(t.j.DataDir, "standby.signal")
}

// swap moves the data directory to PreviousDir and NewDir into its place.
// It finds out how far an interrupted swap got from the directories'
// inodes, so calling it again after a crash at any instant is safe.
func (t *txn) swap() error {
	j := t.j
	if j.Step != StepSwapping {
		if err := t.jw.set(StepSwapping, ""); err != nil {
			return err
		}
	}
	cur, curErr := inode(j.DataDir)
	switch {
	case curErr == nil && cur == j.NewInode:
		// Both renames happened.
	case curErr == nil && j.HadData && cur == j.OldInode:
		if err := renameDurable(j.DataDir, j.PreviousDir); err != nil {
			return err
		}
		fallthrough
	case errors.Is(curErr, os.ErrNotExist):
		if j.HadData {
			if ino, err := inode(j.PreviousDir); err != nil || ino != j.OldInode {
				return fmt.Errorf("the previous data directory is neither at %s nor at %s: not touching anything", j.DataDir, j.PreviousDir)
			}
		}
		if ino, err := inode(j.NewDir); err != nil || ino != j.NewInode {
			return fmt.Errorf("the new data directory %s is missing: not touching anything", j.NewDir)
		}
		if err := renameDurable(j.NewDir, j.DataDir); err != nil {
			return err
		}
	case curErr != nil:
		return fmt.Errorf("looking at %s: %w", j.DataDir, curErr)
	default:
		return fmt.Errorf("%s is neither the previous nor the new data directory: not touching anything", j.DataDir)
	}
	if j.HadData {
		img := Image{ID: filepath.Base(j.PreviousDir), Kind: ImagePrevious, Node: j.Node, Taken: j.Started,
			Note: fmt.Sprintf("data directory replaced by %s", j.Op)}
		if j.Master != "" {
			img.Note += " from " + j.Master
		}
		if cd, err := controlData(context.Background(), t.in, j.PreviousDir); err == nil {
			img.SystemID = cd.SystemID
			img.Timeline, img.LSN = cd.Position()
		}
		store := &ImageStore{Dir: filepath.Dir(j.PreviousDir)}
		if err := store.add(img); err != nil {
			return err
		}
	}
	return t.jw.set(StepSwapped, "previous data directory kept as "+j.PreviousDir)
}

// verify waits until the new data directory serves: for a re-seed, until
// the standby streams on the master's timeline and the master lists it;
// for a restore, until it answers.
func (t *txn) verify(ctx context.Context, peers []Peer) error {
	if t.j.Op == OpRestore {
		t.report("verify", 96, "waiting for the server to answer")
		_, err := t.in.waitStatus(ctx, 60*time.Second, func(*Status) (bool, string) { return true, "" })
		return err
	}
	master := t.master
	if master == nil {
		p, _, err := FindMaster(ctx, OpReseed, t.in.Node, peers)
		if err != nil {
			return fmt.Errorf("cannot verify streaming: %w", err)
		}
		master = &p
	}
	t.report("verify", 96, "waiting until the standby streams from "+master.Node)
	wait := t.waitStreaming
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	var promoted bool
	var ms *Status // the master's
	own, err := t.in.waitStatus(ctx, wait, func(s *Status) (bool, string) {
		if s.Role == RoleMaster {
			// Promoted by the failover group while waiting: it serves.
			promoted = true
			return true, ""
		}
		return t.in.streamsFrom(ctx, s, *master, &ms)
	})
	switch {
	case err != nil:
		return err
	case promoted:
		t.report("verify", 99, fmt.Sprintf("promoted to master on timeline %d while waiting to stream from %s", own.Timeline, master.Node))
	default:
		t.report("verify", 99, fmt.Sprintf("streaming from %s on timeline %d", master.Node, ms.Timeline))
	}
	return nil
}

// streamsFrom says whether the instance, whose status is s, streams from
// master (catching up counts) and the master lists it, reading the master
// afresh; it stores the master's status in ms.
func (in *Instance) streamsFrom(ctx context.Context, s *Status, master Peer, ms **Status) (bool, string) {
	m, err := QueryStatus(ctx, master.ConnInfo)
	if err != nil {
		return false, fmt.Sprintf("master %s unreachable: %v", master.Node, err)
	}
	*ms = m
	switch {
	case m.Role != RoleMaster:
		return false, master.Node + " is no longer a master"
	case s.Role != RoleStandby:
		return false, "the instance is not in recovery"
	}
	f, err := in.Assess(ctx, s, master, []PeerStatus{{Peer: master, Status: m}})
	switch {
	case err != nil:
		return false, err.Error()
	case f.Cannot != nil:
		return false, f.Cannot.Why
	case !f.Streams():
		return false, f.Why
	}
	return true, ""
}

// waitStatus polls the instance until cond holds or wait passes.
func (in *Instance) waitStatus(ctx context.Context, wait time.Duration, cond func(*Status) (bool, string)) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	why := "no answer yet"
	for {
		s, err := in.Status(ctx)
		if err == nil {
			ok, w := cond(s)
			if ok {
				return s, nil
			}
			why = w
		} else {
			why = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("not ready after %s: %s", wait, why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// DefaultKeepFiles are the configuration files a re-seed or restore
// carries over from the previous data directory: they describe this node
// (port, listen address, access rules), not the cluster, so the master's
// copies must not replace them.
var DefaultKeepFiles = []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"}

// carryFiles copies the named files from the previous data directory into
// the new one, reading the previous one only.
func carryFiles(from, to string, names []string, osUser string) error {
	if names == nil {
		names = DefaultKeepFiles
	}
	for _, name := range names {
		if name == "" || filepath.IsAbs(name) || strings.Contains(name, "..") {
			return fmt.Errorf("file to keep %q must be a plain name inside the data directory", name)
		}
		src := filepath.Join(from, name)
		b, err := os.ReadFile(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, name)
		if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
			return err
		}
		if err := chownTo(dst, osUser); err != nil {
			return err
		}
	}
	return nil
}

func chownTo(path, osUser string) error { return runas.Chown(path, osUser) }
