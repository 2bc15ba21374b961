package pg_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/pgtest"
	"github.com/hatui/hatui/protocol"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// streams waits until standby sb streams from master m on m's timeline.
func streams(t *testing.T, sb, m *pgtest.Server) {
	t.Helper()
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		ms, err := m.Instance().Status(context.Background())
		if err != nil {
			return false, err.Error()
		}
		ss, err := sb.Instance().Status(context.Background())
		if err != nil {
			return false, err.Error()
		}
		if ss.Receiver == nil || ss.Receiver.Status != "streaming" || ss.Receiver.Timeline != ms.Timeline {
			return false, fmt.Sprintf("%s receiver %+v, master on timeline %d", sb.Name, ss.Receiver, ms.Timeline)
		}
		if r, ok := ms.StandbyNamed(sb.Name); !ok || r.State != "streaming" {
			return false, fmt.Sprintf("%s not streaming in %s's pg_stat_replication", sb.Name, m.Name)
		}
		return true, ""
	})
}

// siblings lists what lies next to a data directory besides the server's
// own log: leftover copies, journals.
func siblings(t *testing.T, s *pgtest.Server) []string {
	t.Helper()
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		switch n := e.Name(); {
		case n == "data", n == "data.log", n == "data.lock", n == "data.images", strings.HasPrefix(n, ".s.PGSQL"):
		default:
			out = append(out, n)
		}
	}
	return out
}

// inodeOf identifies a directory: a data directory replaced by a re-seed
// has another inode.
func inodeOf(t *testing.T, dir string) uint64 {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func writeMarker(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "hatui-test-marker"), []byte("old data"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReseedLocalStandby re-seeds a running local standby while the
// master takes writes: progress rises, the old data directory becomes a
// fallback image, and the standby ends streaming on the master's timeline.
func TestReseedLocalStandby(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	m.Fill(t, "cdr", 24)
	sb := m.NewStandby(t, "pbx-a2")
	streams(t, sb, m)
	writeMarker(t, sb.DataDir)
	ms := status(t, m)

	var mu sync.Mutex
	var steps []protocol.Progress
	in := sb.Instance()
	res, err := in.Reseed(ctxT(t, 2*time.Minute), pg.ReseedOptions{
		Peers:   []pg.Peer{m.Peer()},
		MaxRate: "16M", // slow enough for pg_basebackup to report progress several times
		Progress: func(p protocol.Progress) {
			mu.Lock()
			steps = append(steps, p)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	var copyPct []float64
	for i, p := range steps {
		if i > 0 && p.Percent < steps[i-1].Percent {
			t.Errorf("progress went backwards: %v then %v", steps[i-1], p)
		}
		if p.Step == "copy" {
			copyPct = append(copyPct, p.Percent)
		}
	}
	distinct := map[float64]bool{}
	for _, p := range copyPct {
		distinct[p] = true
	}
	if len(distinct) < 3 {
		t.Errorf("copy progress reported %v, want at least 3 increasing values", copyPct)
	}
	if last := steps[len(steps)-1]; last.Percent != 100 || last.Step != "done" {
		t.Errorf("last progress %+v, want done at 100%%", last)
	}

	if res.Master != "pbx-a1" || res.Timeline != ms.Timeline || res.Previous == nil {
		t.Fatalf("result %+v", res)
	}
	if res.Previous.Kind != pg.ImagePrevious || res.Previous.SystemID != ms.SystemID {
		t.Errorf("previous image %+v", res.Previous)
	}
	if _, err := os.Stat(filepath.Join(res.Previous.Dir, "hatui-test-marker")); err != nil {
		t.Errorf("the old data directory is not the fallback image: %v", err)
	}
	if _, err := os.Stat(filepath.Join(sb.DataDir, "hatui-test-marker")); err == nil {
		t.Error("the marker of the old data directory is in the new one")
	}
	imgs, err := in.Images().List()
	if err != nil || len(imgs) != 1 || imgs[0].Dir != res.Previous.Dir {
		t.Errorf("images %+v, %v; want the previous data directory", imgs, err)
	}
	if left := siblings(t, sb); len(left) != 0 {
		t.Errorf("left beside the data directory: %v", left)
	}
	streams(t, sb, m)

	// It replicates new writes, and kept its own port (postgresql.conf
	// carried over, not the master's).
	m.Exec(t, "INSERT INTO cdr VALUES (-1, 'after re-seed')")
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := sb.QueryInt(t, "SELECT count(*) FROM cdr WHERE id = -1")
		return n == 1, "row not replicated yet"
	})
}

// TestReseedRefusals checks each refusal, and that a refusal changes
// nothing.
func TestReseedRefusals(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	sb := m.NewStandby(t, "pbx-a2")
	other := pgtest.NewMaster(t, "pbx-x1", pgtest.FreshCluster())
	streams(t, sb, m)

	ghost := pg.Peer{Node: "pbx-ghost", ConnInfo: "host=127.0.0.1 port=1 user=postgres sslmode=disable connect_timeout=2"}
	tests := []struct {
		name     string
		target   *pgtest.Server
		peers    []pg.Peer
		want     pg.Reason
		forcible bool
	}{
		{"on the master", m, []pg.Peer{sb.Peer()}, pg.ReasonIsMaster, false},
		{"no reachable master", sb, []pg.Peer{ghost}, pg.ReasonNoMaster, false},
		{"only standbys reachable", sb, []pg.Peer{ghost, sb.Peer()}, pg.ReasonNoMaster, false},
		{"different system identifier", sb, []pg.Peer{other.Peer()}, pg.ReasonSystemMismatch, true},
		{"two masters", sb, []pg.Peer{m.Peer(), other.Peer()}, pg.ReasonManyMasters, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := status(t, tt.target)
			_, err := tt.target.Instance().Reseed(ctxT(t, time.Minute), pg.ReseedOptions{Peers: tt.peers})
			var ref *pg.RefusedError
			if !errors.As(err, &ref) || ref.Reason != tt.want || ref.Forcible != tt.forcible {
				t.Fatalf("got %v, want refusal %s", err, tt.want)
			}
			if ref.Hint == "" || protocol.CodeOf(err) != protocol.CodeRefused {
				t.Errorf("refusal lacks a hint or the refused code: %+v", ref)
			}
			after := status(t, tt.target)
			if !tt.target.Running() || after.Role != before.Role || after.Timeline != before.Timeline {
				t.Errorf("the refusal changed the instance: %s/%d -> %s/%d", before.Role, before.Timeline, after.Role, after.Timeline)
			}
			if left := siblings(t, tt.target); len(left) != 0 {
				t.Errorf("the refusal left %v", left)
			}
		})
	}

	t.Run("local timeline ahead unless forced", func(t *testing.T) {
		split := m.NewStandby(t, "pbx-a3")
		streams(t, split, m)
		// Split brain: the standby is promoted while the master lives.
		split.Exec(t, "SELECT pg_promote(true, 60)")
		split.Exec(t, "CREATE TABLE only_here (id int)")
		if st := status(t, split); st.Timeline != 2 || st.Role != pg.RoleMaster {
			t.Fatalf("after the split-brain promote: %s on timeline %d", st.Role, st.Timeline)
		}
		split.Stop(t) // a stopped instance is judged from its control file
		sums := pgtest.Checksums(t, split.DataDir)
		in := split.Instance()
		_, err := in.Reseed(ctxT(t, time.Minute), pg.ReseedOptions{Peers: []pg.Peer{m.Peer()}})
		var ref *pg.RefusedError
		if !errors.As(err, &ref) || ref.Reason != pg.ReasonLocalAhead || !ref.Forcible {
			t.Fatalf("got %v, want a forcible local-ahead refusal", err)
		}
		if d := pgtest.DiffChecksums(sums, pgtest.Checksums(t, split.DataDir)); len(d) != 0 {
			t.Fatalf("the refusal changed the data directory: %v", d)
		}
		res, err := in.Reseed(ctxT(t, 2*time.Minute), pg.ReseedOptions{Peers: []pg.Peer{m.Peer()}, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Previous == nil || res.Previous.Timeline != 2 {
			t.Errorf("the split-brain data should be kept as an image on timeline 2: %+v", res.Previous)
		}
		if d := pgtest.DiffChecksums(sums, pgtest.Checksums(t, res.Previous.Dir)); len(d) != 0 {
			t.Errorf("the kept split-brain data differs from what it was: %v", d)
		}
		streams(t, split, m)
		if st := status(t, split); st.Timeline != 1 {
			t.Errorf("re-seeded standby on timeline %d, want the master's 1", st.Timeline)
		}
	})
}

const childEnv = "HATUI_PG_RESEED_CHILD"

type childConfig struct {
	Instance pg.Instance
	Peers    []pg.Peer
	MaxRate  string
}

// TestReseedChild is not a test of its own: TestReseedKilled runs the
// test binary again with this test selected to re-seed in a process it
// can kill.
func TestReseedChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("only run as the child of TestReseedKilled")
	}
	var c childConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	_, err := c.Instance.Reseed(context.Background(), pg.ReseedOptions{Peers: c.Peers, MaxRate: c.MaxRate,
		Progress: func(p protocol.Progress) { fmt.Printf("progress %s %.1f\n", p.Step, p.Percent) }})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReseedKilled kills the process doing a re-seed in the middle of
// pg_basebackup: the previous data directory is intact, Recover says what
// happened and will roll back, and after that the standby starts again.
func TestReseedKilled(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	m.Fill(t, "cdr", 24)
	sb := m.NewStandby(t, "pbx-a2")
	streams(t, sb, m)
	sb.Stop(t)
	before := pgtest.Checksums(t, sb.DataDir)

	in := sb.Instance()
	cfg, _ := json.Marshal(childConfig{Instance: *in, Peers: []pg.Peer{m.Peer()}, MaxRate: "4M"})
	child := exec.Command(os.Args[0], "-test.run=^TestReseedChild$", "-test.v")
	child.Env = append(os.Environ(), childEnv+"="+string(cfg))
	out := &syncBuffer{}
	child.Stdout, child.Stderr = out, out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	journal := sb.DataDir + ".journal.json"
	var j pg.Journal
	pgtest.Eventually(t, 60*time.Second, func() (bool, string) {
		b, err := os.ReadFile(journal)
		if err != nil {
			return false, "no journal yet; child said: " + out.String()
		}
		if err := json.Unmarshal(b, &j); err != nil {
			return false, err.Error()
		}
		if j.Step != pg.StepCopying || j.CopyPID == 0 {
			return false, "journal at step " + string(j.Step)
		}
		// Wait until the copy has really written data.
		if _, err := os.Stat(filepath.Join(j.NewDir, "base")); err != nil {
			return false, "copy has not written base/ yet"
		}
		return true, ""
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	// The copy, pg_basebackup's forked WAL receiver included, dies with
	// the process that started it.
	pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
		if p := writers(j.NewDir); len(p) > 0 {
			return false, fmt.Sprintf("processes still copying into %s: %v", j.NewDir, p)
		}
		return true, ""
	})
	if d := pgtest.DiffChecksums(before, pgtest.Checksums(t, sb.DataDir)); len(d) != 0 {
		t.Fatalf("the previous data directory changed: %v", d)
	}

	plan, err := in.Recover(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recover: %s", plan)
	if plan.Action != pg.ActionRollBack || !plan.PreviousIntact || plan.PreviousAt != sb.DataDir {
		t.Fatalf("plan %+v, want a roll back with the previous data intact in place", plan)
	}
	for _, want := range []string{"interrupted while copying", "copy process", "intact"} {
		if !strings.Contains(plan.Happened, want) {
			t.Errorf("Happened %q does not say %q", plan.Happened, want)
		}
	}
	if !strings.Contains(plan.Will, "delete the incomplete copy") {
		t.Errorf("Will %q does not say it deletes the incomplete copy", plan.Will)
	}
	// A new re-seed refuses until recovery is done.
	if _, err := in.Reseed(ctxT(t, time.Minute), pg.ReseedOptions{Peers: []pg.Peer{m.Peer()}}); pg.RefusalReason(err) != pg.ReasonInterrupted {
		t.Errorf("re-seed over an interrupted one: %v, want refusal %s", err, pg.ReasonInterrupted)
	}
	if err := plan.Apply(ctxT(t, time.Minute), pg.RecoverOptions{Peers: []pg.Peer{m.Peer()}}); err != nil {
		t.Fatal(err)
	}
	if d := pgtest.DiffChecksums(before, pgtest.Checksums(t, sb.DataDir)); len(d) != 0 {
		t.Fatalf("the roll back changed the previous data directory: %v", d)
	}
	if left := siblings(t, sb); len(left) != 0 {
		t.Errorf("left after the roll back: %v", left)
	}
	if plan2, _ := in.Recover(ctxT(t, time.Minute)); plan2.Action != pg.ActionNone {
		t.Errorf("after the roll back, recover plans %+v", plan2)
	}
	// The old standby data is good: it starts and streams again.
	res, err := in.StartStandby(ctxT(t, time.Minute), pg.StandbyOptions{Peers: []pg.Peer{m.Peer()}})
	if err != nil || res.Outcome != pg.OutcomeStarted {
		t.Fatalf("start as standby after the roll back: %+v, %v", res, err)
	}
	streams(t, sb, m)
}

// writers lists live processes whose command line names dir.
func writers(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		b, err := os.ReadFile(p + "/cmdline")
		if err != nil || len(b) == 0 {
			continue // gone, or a zombie: it writes nothing
		}
		if strings.Contains(string(b), dir) {
			out = append(out, filepath.Base(p)+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// crashAt is panicked by the step hook to stand for the process dying.
type crashAt pg.Step

// reseedCrashingAt runs a re-seed that "dies" right after step is
// journaled: nothing after that point runs, no roll back, no clean up.
func reseedCrashingAt(t *testing.T, in *pg.Instance, peers []pg.Peer, step pg.Step) {
	t.Helper()
	defer pg.SetStepHook(func(s pg.Step) {
		if s == step {
			panic(crashAt(s))
		}
	})()
	defer func() {
		if r := recover(); r != crashAt(step) {
			t.Fatalf("re-seed did not reach step %s: %v", step, r)
		}
	}()
	_, err := in.Reseed(ctxT(t, 2*time.Minute), pg.ReseedOptions{Peers: peers})
	t.Fatalf("re-seed finished (%v) instead of crashing at %s", err, step)
}

// TestReseedResume: a re-seed that dies once its copy is complete is
// resumed by Recover, not thrown away, and ends streaming.
func TestReseedResume(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	sb := m.NewStandby(t, "pbx-a2")
	streams(t, sb, m)
	writeMarker(t, sb.DataDir)
	in := sb.Instance()
	peers := []pg.Peer{m.Peer()}

	reseedCrashingAt(t, in, peers, pg.StepSwapping)
	plan, err := in.Recover(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recover: %s", plan)
	if plan.Action != pg.ActionResume || !plan.PreviousIntact || plan.PreviousAt != sb.DataDir {
		t.Fatalf("plan %+v, want resume with the previous data still in place", plan)
	}
	if err := plan.Apply(ctxT(t, 2*time.Minute), pg.RecoverOptions{Peers: peers}); err != nil {
		t.Fatal(err)
	}
	streams(t, sb, m)
	imgs, err := in.Images().List()
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images %v, %v; want the previous data directory", imgs, err)
	}
	if _, err := os.Stat(filepath.Join(imgs[0].Dir, "hatui-test-marker")); err != nil {
		t.Errorf("the previous data directory is not the image: %v", err)
	}
	if left := siblings(t, sb); len(left) != 0 {
		t.Errorf("left beside the data directory: %v", left)
	}
}

// TestReseedResumePromoted: a re-seed that dies after the swap, whose new
// standby is then started and promoted (the failover group took over on
// this node meanwhile) and stopped, is done: Recover does not start the
// promoted data again, which would make a second master once another node
// was promoted since.
func TestReseedResumePromoted(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	sb := m.NewStandby(t, "pbx-a2")
	streams(t, sb, m)
	in := sb.Instance()
	peers := []pg.Peer{m.Peer()}

	reseedCrashingAt(t, in, peers, pg.StepSwapped)
	ctx := ctxT(t, 2*time.Minute)
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Promote(ctx, pg.PromoteRequest{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	plan, err := in.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recover: %s", plan)
	if plan.Action != pg.ActionResume {
		t.Fatalf("plan %+v, want resume", plan)
	}
	if err := plan.Apply(ctx, pg.RecoverOptions{Peers: peers}); err != nil {
		t.Fatal(err)
	}
	if up, err := in.Running(ctx); err != nil || up {
		t.Errorf("after the recovery the promoted data runs (%v, %v): a second master", up, err)
	}
	if again, err := in.Recover(ctx); err != nil || again.Action != pg.ActionNone {
		t.Errorf("a second recovery plans %+v (%v), want nothing: the journal should be gone", again, err)
	}
}

// syncBuffer is a strings.Builder safe for a child's output goroutines
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
