package resource

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// newWarmGroup builds a group "addr" (cold) then "pbx" (warm), exec
// resources logging to the returned file.
func newWarmGroup(t *testing.T) (*Group, string, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls.log")
	addr := mustNew(t, Spec{Name: "addr", Type: "exec", Params: map[string]string{"path": lsbScript(t, dir, "addr", log)}})
	pbx := mustNew(t, Spec{Name: "pbx", Type: "exec", Warm: true, Params: map[string]string{"path": lsbScript(t, dir, "pbx", log)}})
	g, err := NewGroup("grp", []Resource{addr, pbx}, GroupConfig{MigrationThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	return g, dir, log
}

// TestWarmGroup: a warm resource starts without the group, is left
// running by the group's start and stop (only the cold resources move),
// is restarted alone where it fails, and is reported as warm.
func TestWarmGroup(t *testing.T) {
	ctx := testCtx(t)
	g, dir, log := newWarmGroup(t)
	if got := g.Warm(); !slices.Equal(got, []string{"pbx"}) {
		t.Fatalf("Warm() = %q, want [pbx]", got)
	}
	if !g.WarmPending() {
		t.Fatal("WarmPending before StartWarm = false")
	}
	if err := g.StartWarm(ctx); err != nil {
		t.Fatal(err)
	}
	if g.WarmPending() {
		t.Fatal("WarmPending after StartWarm = true")
	}
	// A standby: the group is stopped, its warm resource runs, and that
	// is neither a failure nor unexpected.
	for _, p := range g.Monitor(ctx) {
		if p.Failed || p.Unexpected {
			t.Fatalf("standby probe %+v: want neither failed nor unexpected", p)
		}
	}
	st := g.Status("n2")
	if st.State != GroupStopped || st.Resources[1].State != ResStarted || !st.Resources[1].Warm || st.Resources[0].Warm {
		t.Fatalf("standby status %+v: want the group stopped, pbx started and warm, addr not warm", st)
	}
	// Takeover: only the cold resource starts.
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Release: only the cold resource stops; the PBX stays up.
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := readLines(t, log), []string{"start pbx", "start addr", "stop addr"}; !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "pbx.state")); err != nil {
		t.Fatalf("the warm pbx stopped with the group: %v", err)
	}
	// The warm PBX dies on the standby: the monitor says so, counts it,
	// and RestartWarm brings it back without the cold resource.
	os.Remove(filepath.Join(dir, "pbx.state"))
	var failed *Probe
	for _, p := range g.Monitor(ctx) {
		if p.Resource == "pbx" {
			failed = &p
		}
	}
	if failed == nil || !failed.Failed || !failed.Warm || failed.FailCount != 1 {
		t.Fatalf("probe of the dead warm pbx = %+v, want failed, warm, fail count 1", failed)
	}
	if err := g.RestartWarm(ctx, "pbx"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pbx.state")); err != nil {
		t.Fatalf("RestartWarm did not start the pbx: %v", err)
	}
	if got := readLines(t, log); slices.Contains(got[3:], "start addr") {
		t.Fatalf("restarting the warm pbx touched the cold resource: %q", got)
	}
	// At the migration threshold it is not restarted again until cleanup.
	g.RecordFailure("pbx", "monitor (warm)", "dead again")
	if err := g.RestartWarm(ctx, "pbx"); !errors.Is(err, ErrMigrationThreshold) {
		t.Fatalf("RestartWarm past the threshold = %v, want ErrMigrationThreshold", err)
	}
	g.Cleanup("pbx")
	// A node that may no longer hold the group stops it.
	if err := g.StopWarm(ctx); err != nil {
		t.Fatal(err)
	}
	if g.WarmRunning() {
		t.Fatal("WarmRunning after StopWarm = true")
	}
}

// TestWarmVIPRefused: the address is what moves; it cannot be warm.
func TestWarmVIPRefused(t *testing.T) {
	_, err := New(Spec{Name: "vip", Type: "vip", Warm: true, Params: map[string]string{"ip": "10.0.0.10/24", "interface": "eth0"}})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "warm" {
		t.Fatalf("New(warm vip) = %v, want a ConfigError on key warm", err)
	}
}
