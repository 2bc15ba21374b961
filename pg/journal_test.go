package pg

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixture lays out a data directory, a sibling copy and an image store as
// an interrupted re-seed leaves them, and returns the instance and journal.
type fixture struct {
	in  *Instance
	j   *Journal
	dir string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	in := &Instance{Node: "pbx-a2", ConnInfo: "host=127.0.0.1 port=1", DataDir: filepath.Join(dir, "data")}
	for _, d := range []string{in.DataDir, in.DataDir + ".new-1", in.DataDir + ".images"} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(in.DataDir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldIno, _ := inode(in.DataDir)
	newIno, _ := inode(in.DataDir + ".new-1")
	j := &Journal{
		Version: JournalVersion, Op: OpReseed, Node: in.Node, PID: 1, Step: StepCopying,
		DataDir: in.DataDir, NewDir: in.DataDir + ".new-1", PreviousDir: filepath.Join(in.DataDir+".images", "20260101T000000.000Z-previous"),
		HadData: true, OldInode: oldIno, NewInode: newIno, Master: "pbx-a1", Slot: "pbx_a2", SlotCreated: true, CopyPID: 4242,
		Started: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	return &fixture{in: in, j: j, dir: dir}
}

func (f *fixture) write(t *testing.T) {
	t.Helper()
	jw := &journalWriter{path: f.in.journalPath(), j: f.j}
	if err := jw.write(); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverPlans(t *testing.T) {
	tests := []struct {
		name    string
		step    Step
		setup   func(t *testing.T, f *fixture) // moves directories as a crash at that instant would leave them
		action  RecoveryAction
		intact  bool
		prevAt  func(f *fixture) string
		mention []string
	}{
		{name: "checked", step: StepChecked, action: ActionRollBack, intact: true, mention: []string{"before any copy"}},
		{name: "stopped", step: StepStopped, action: ActionRollBack, intact: true},
		{name: "copying", step: StepCopying, action: ActionRollBack, intact: true,
			mention: []string{"interrupted while copying", "delete the incomplete copy", `drop replication slot "pbx_a2" on pbx-a1`}},
		{name: "copied", step: StepCopied, action: ActionResume, intact: true, mention: []string{"completed", "move the copy into place"}},
		{name: "swapping, nothing renamed", step: StepSwapping, action: ActionResume, intact: true, mention: []string{"previous data directory still"}},
		{name: "swapping, between renames", step: StepSwapping, action: ActionResume, intact: true,
			setup:  func(t *testing.T, f *fixture) { mustRename(t, f.j.DataDir, f.j.PreviousDir) },
			prevAt: func(f *fixture) string { return f.j.PreviousDir }, mention: []string{"between the two renames"}},
		{name: "swapping, both renamed", step: StepSwapping, action: ActionResume, intact: true,
			setup: func(t *testing.T, f *fixture) {
				mustRename(t, f.j.DataDir, f.j.PreviousDir)
				mustRename(t, f.j.NewDir, f.j.DataDir)
			},
			prevAt: func(f *fixture) string { return f.j.PreviousDir }, mention: []string{"the new copy"}},
		{name: "swapping, previous lost", step: StepSwapping, action: ActionManual, intact: false,
			setup: func(t *testing.T, f *fixture) { mustRename(t, f.j.DataDir, filepath.Join(f.dir, "elsewhere")) }},
		{name: "swapped", step: StepSwapped, action: ActionResume, intact: true,
			setup: func(t *testing.T, f *fixture) {
				mustRename(t, f.j.DataDir, f.j.PreviousDir)
				mustRename(t, f.j.NewDir, f.j.DataDir)
			},
			prevAt: func(f *fixture) string { return f.j.PreviousDir }, mention: []string{"start the server"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.j.Step = tt.step
			f.write(t)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			plan, err := f.in.Recover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if plan.Action != tt.action || plan.PreviousIntact != tt.intact {
				t.Fatalf("plan %s", plan)
			}
			want := f.j.DataDir
			if tt.prevAt != nil {
				want = tt.prevAt(f)
			}
			if tt.intact && plan.PreviousAt != want {
				t.Errorf("previous at %q, want %q", plan.PreviousAt, want)
			}
			for _, m := range tt.mention {
				if !strings.Contains(plan.String(), m) {
					t.Errorf("plan %q does not mention %q", plan, m)
				}
			}
		})
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverNothingAndGarbage(t *testing.T) {
	f := newFixture(t)
	plan, err := f.in.Recover(context.Background())
	if err != nil || plan.Action != ActionNone {
		t.Fatalf("no journal: %+v, %v", plan, err)
	}
	if err := plan.Apply(context.Background(), RecoverOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.in.journalPath(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	plan, err = f.in.Recover(context.Background())
	if err != nil || plan.Action != ActionManual {
		t.Fatalf("garbage journal: %+v, %v", plan, err)
	}
	if err := plan.Apply(context.Background(), RecoverOptions{}); RefusalReason(err) != ReasonInterrupted {
		t.Fatalf("applying a manual plan: %v", err)
	}
}

// TestRollBackKeepsPrevious applies a roll back at the copying step: only
// the copy goes; the previous data directory is not touched.
func TestRollBackKeepsPrevious(t *testing.T) {
	f := newFixture(t)
	f.j.SlotCreated = false // no master here to drop it on
	f.write(t)
	if err := os.WriteFile(filepath.Join(f.j.NewDir, "partial"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	plan, err := f.in.Recover(context.Background())
	if err != nil || plan.Action != ActionRollBack {
		t.Fatalf("%+v, %v", plan, err)
	}
	if err := plan.Apply(context.Background(), RecoverOptions{}); err != nil {
		t.Fatal(err)
	}
	if !fileGone(f.j.NewDir) || !fileGone(f.in.journalPath()) {
		t.Error("the copy or the journal is still there")
	}
	if b, err := os.ReadFile(filepath.Join(f.in.DataDir, "PG_VERSION")); err != nil || string(b) != "15\n" {
		t.Errorf("previous data directory damaged: %q, %v", b, err)
	}
}

func TestDecodeJournal(t *testing.T) {
	f := newFixture(t)
	good, _ := json.Marshal(f.j)
	if _, err := DecodeJournal(good); err != nil {
		t.Fatalf("valid journal rejected: %v", err)
	}
	mutate := func(fn func(j *Journal)) []byte {
		j := *f.j
		fn(&j)
		b, _ := json.Marshal(&j)
		return b
	}
	bad := map[string][]byte{
		"not json":          []byte("{"),
		"trailing":          append(append([]byte{}, good...), []byte("{}")...),
		"unknown field":     []byte(`{"version":1,"surprise":true}`),
		"version":           mutate(func(j *Journal) { j.Version = 99 }),
		"op":                mutate(func(j *Journal) { j.Op = "format" }),
		"step":              mutate(func(j *Journal) { j.Step = "exploded" }),
		"relative data dir": mutate(func(j *Journal) { j.DataDir = "data" }),
		"root data dir":     mutate(func(j *Journal) { j.DataDir = "/" }),
		"new dir elsewhere": mutate(func(j *Journal) { j.NewDir = "/etc" }),
		"new dir is data":   mutate(func(j *Journal) { j.NewDir = j.DataDir }),
		"previous is data":  mutate(func(j *Journal) { j.PreviousDir = j.DataDir }),
		"no place for data": mutate(func(j *Journal) { j.PreviousDir = "" }),
	}
	for name, b := range bad {
		if _, err := DecodeJournal(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeJournal(f *testing.F) {
	f.Add([]byte(`{"version":1,"op":"re-seed","node":"a","pid":1,"step":"copying","data_dir":"/d/data","new_dir":"/d/data.new-1","previous_dir":"/d/data.images/x","had_data":true,"was_running":false,"started":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z","history":[]}`))
	f.Add([]byte(`{"version":1,"op":"restore","step":"done","data_dir":"/x","new_dir":"/y"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := DecodeJournal(b)
		if err != nil {
			return
		}
		// Whatever is accepted names directories recovery may delete:
		// the copy must be a sibling of, and not be, the data directory.
		if filepath.Dir(filepath.Clean(j.NewDir)) != filepath.Dir(filepath.Clean(j.DataDir)) || filepath.Clean(j.NewDir) == filepath.Clean(j.DataDir) {
			t.Fatalf("accepted a journal whose copy is not a sibling: %+v", j)
		}
	})
}

func TestWriteAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j.json")
	for _, s := range []string{"one", "two"} {
		if err := writeAtomic(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("read %q, want %q", b, s)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// TestSwapResumes calls swap as Recover's resume does, from each state a
// crash during the swap can leave, and checks the end state is the same.
func TestSwapResumes(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T, f *fixture){
		"nothing renamed": func(*testing.T, *fixture) {},
		"between renames": func(t *testing.T, f *fixture) { mustRename(t, f.j.DataDir, f.j.PreviousDir) },
		"both renamed": func(t *testing.T, f *fixture) {
			mustRename(t, f.j.DataDir, f.j.PreviousDir)
			mustRename(t, f.j.NewDir, f.j.DataDir)
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.j.Step = StepSwapping
			f.write(t)
			setup(t, f)
			tx := &txn{in: f.in, j: f.j, jw: &journalWriter{path: f.in.journalPath(), j: f.j}}
			if err := tx.swap(); err != nil {
				t.Fatal(err)
			}
			if !sameInode(f.j.DataDir, f.j.NewInode) || !sameInode(f.j.PreviousDir, f.j.OldInode) || !fileGone(f.j.NewDir) {
				t.Fatal("directories not where a finished swap puts them")
			}
			if f.j.Step != StepSwapped {
				t.Errorf("journal at %s", f.j.Step)
			}
			imgs, err := f.in.Images().List()
			if err != nil || len(imgs) != 1 || imgs[0].Kind != ImagePrevious {
				t.Errorf("images %+v, %v", imgs, err)
			}
		})
	}
	// A data directory that is neither old nor new is never moved.
	f := newFixture(t)
	f.j.Step = StepSwapping
	f.write(t)
	mustRename(t, f.j.DataDir, filepath.Join(f.dir, "elsewhere"))
	if err := os.Mkdir(f.j.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	tx := &txn{in: f.in, j: f.j, jw: &journalWriter{path: f.in.journalPath(), j: f.j}}
	if err := tx.swap(); err == nil {
		t.Fatal("swapped over a stranger's directory")
	}
	if !sameInode(f.j.NewDir, f.j.NewInode) {
		t.Error("the copy was moved anyway")
	}
}
