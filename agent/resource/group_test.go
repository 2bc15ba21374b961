package resource

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newExecGroup builds a group of exec resources named names, logging to
// the returned log file.
func newExecGroup(t *testing.T, cfg GroupConfig, names ...string) (*Group, string, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls.log")
	var rs []Resource
	for _, n := range names {
		rs = append(rs, mustNew(t, Spec{Name: n, Type: "exec", Params: map[string]string{"path": lsbScript(t, dir, n, log)}}))
	}
	g, err := NewGroup("pbx", rs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g, dir, log
}

func TestExecResourceLifecycle(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "calls.log")
	r := mustNew(t, Spec{Name: "asterisk", Type: "exec", Params: map[string]string{"path": lsbScript(t, dir, "asterisk", log)}})

	if st := r.Monitor(ctx); st.State != StateStopped {
		t.Fatalf("before start: monitor = %v, want stopped", st)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Monitor(ctx); st.State != StateRunning || st.Detail != "running" {
		t.Fatalf("after start: monitor = %v, want running with the script's output", st)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Monitor(ctx); st.State != StateStopped {
		t.Fatalf("after stop: monitor = %v, want stopped", st)
	}
	if got, want := readLines(t, log), []string{"start asterisk", "stop asterisk"}; !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
}

func TestExecStartFailureReportsScriptError(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	r := mustNew(t, Spec{Name: "asterisk", Type: "exec", Params: map[string]string{"path": lsbScript(t, dir, "asterisk", filepath.Join(dir, "log"))}})
	os.WriteFile(filepath.Join(dir, "asterisk.failstart"), nil, 0o644)
	err := r.Start(ctx)
	var oe *OpError
	var ee *ExitError
	if !errors.As(err, &oe) || !errors.As(err, &ee) {
		t.Fatalf("Start error = %v, want *OpError wrapping *ExitError", err)
	}
	if oe.Resource != "asterisk" || oe.Op != "start" || ee.Code != 1 {
		t.Fatalf("error fields: %+v %+v", oe, ee)
	}
	// The stderr line that says why wins over the chatter on stdout.
	if !strings.Contains(err.Error(), "cannot bind port 5060") {
		t.Fatalf("error %q does not carry the script's reason", err)
	}
}

func TestGroupStartsInOrderStopsInReverse(t *testing.T) {
	ctx := testCtx(t)
	g, _, log := newExecGroup(t, GroupConfig{}, "vip", "db", "asterisk")
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := g.Status("pbx-a1"); st.State != GroupStarted || st.Resources[2].State != ResStarted || st.Resources[2].Node != "pbx-a1" {
		t.Fatalf("status after start = %+v", st)
	}
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"start vip", "start db", "start asterisk", "stop asterisk", "stop db", "stop vip"}
	if got := readLines(t, log); !slices.Equal(got, want) {
		t.Fatalf("calls =\n%q\nwant\n%q", got, want)
	}
	if st := g.Status("pbx-a1"); st.State != GroupStopped {
		t.Fatalf("state after stop = %q", st.State)
	}
}

func TestGroupStartFailureRollsBack(t *testing.T) {
	ctx := testCtx(t)
	g, dir, log := newExecGroup(t, GroupConfig{}, "vip", "db", "asterisk", "webui")
	os.WriteFile(filepath.Join(dir, "asterisk.failstart"), nil, 0o644)

	err := g.Start(ctx)
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("Start error = %v, want *StartError", err)
	}
	if se.Resource != "asterisk" || se.Rollback != nil {
		t.Fatalf("StartError = %+v, want asterisk with a clean rollback", se)
	}
	if !strings.Contains(err.Error(), "cannot bind port 5060") || !strings.Contains(err.Error(), `"asterisk"`) {
		t.Fatalf("error %q must name the resource and say why", err)
	}
	if want := []string{"asterisk", "db", "vip"}; !slices.Equal(se.RolledBack, want) {
		t.Fatalf("rolled back %q, want %q", se.RolledBack, want)
	}
	want := []string{"start vip", "start db", "start asterisk", "stop asterisk", "stop db", "stop vip"}
	if got := readLines(t, log); !slices.Equal(got, want) {
		t.Fatalf("calls =\n%q\nwant\n%q (webui never started, the rest stopped in reverse)", got, want)
	}
	// A failed start is fatal for the node (Pacemaker's default).
	if n := g.FailCount("asterisk"); n != FailCountInfinity {
		t.Fatalf("fail count = %d, want INFINITY", n)
	}
	if res, ok := g.NeedsMigration(); !ok || res != "asterisk" {
		t.Fatalf("NeedsMigration = %q %v, want asterisk true", res, ok)
	}
	st := g.Status("n1")
	if st.State != GroupFailed || st.Resources[2].State != ResFailed || st.Resources[0].State != ResStopped {
		t.Fatalf("status = %+v", st)
	}
	if f := g.Failed("n1"); len(f) != 1 || f[0].Resource != "asterisk" || f[0].Op != "start" || f[0].Node != "n1" {
		t.Fatalf("failed actions = %+v", f)
	}

	// Cleanup resets the count; with the cause gone the group starts.
	if err := g.Cleanup("asterisk"); err != nil {
		t.Fatal(err)
	}
	if n := g.FailCount("asterisk"); n != 0 || len(g.Failed("n1")) != 0 {
		t.Fatalf("after cleanup fail count = %d, failed = %v", n, g.Failed("n1"))
	}
	os.Remove(filepath.Join(dir, "asterisk.failstart"))
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestGroupRollbackFailureAsksForFencing(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	stuck := writeScript(t, dir, "stuck.sh", `
case "$1" in
start) exit 0 ;;
stop) echo "ERROR: device busy" >&2; exit 1 ;;
status) exit 0 ;;
esac`)
	rs := []Resource{
		mustNew(t, Spec{Name: "mount", Type: "exec", Params: map[string]string{"path": stuck}}),
		mustNew(t, Spec{Name: "asterisk", Type: "exec", Params: map[string]string{"path": lsbScript(t, dir, "asterisk", log)}}),
	}
	os.WriteFile(filepath.Join(dir, "asterisk.failstart"), nil, 0o644)
	g, err := NewGroup("pbx", rs, GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	err = g.Start(ctx)
	var se *StartError
	if !errors.As(err, &se) || se.Rollback == nil {
		t.Fatalf("error = %v, want a StartError with a rollback failure", err)
	}
	if !strings.Contains(err.Error(), "fenced") || !strings.Contains(err.Error(), "device busy") {
		t.Fatalf("error %q must say the node needs fencing and why", err)
	}

	err = g.Stop(ctx)
	var ste *StopError
	if !errors.As(err, &ste) || !slices.Equal(ste.Failed, []string{"mount"}) {
		t.Fatalf("Stop error = %v, want StopError for mount", err)
	}
	if n := g.FailCount("mount"); n != FailCountInfinity {
		t.Fatalf("stop failure fail count = %d, want INFINITY", n)
	}
}

func TestGroupMonitorRecoverAndMigrationThreshold(t *testing.T) {
	ctx := testCtx(t)
	now := time.Date(2025, 1, 1, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	g, dir, log := newExecGroup(t, GroupConfig{MigrationThreshold: 2, FailureTimeout: 10 * time.Minute, Now: clock}, "vip", "asterisk", "webui")
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	os.Remove(log)

	// asterisk dies: the monitor counts it and recovery restarts it and
	// what follows it in the group, and nothing before it.
	os.Remove(filepath.Join(dir, "asterisk.state"))
	probes := g.Monitor(ctx)
	if p := probes[1]; !p.Failed || p.FailCount != 1 || p.Migrate || p.Status.State != StateStopped {
		t.Fatalf("probe = %+v, want a counted failure below the threshold", p)
	}
	if probes[0].Failed || probes[2].Failed {
		t.Fatalf("healthy resources reported failed: %+v", probes)
	}
	if err := g.Recover(ctx, "asterisk"); err != nil {
		t.Fatal(err)
	}
	want := []string{"stop webui", "stop asterisk", "start asterisk", "start webui"}
	if got := readLines(t, log); !slices.Equal(got, want) {
		t.Fatalf("recover calls = %q, want %q", got, want)
	}
	if g.Status("n").State != GroupStarted {
		t.Fatal("group not started after recovery")
	}

	// The second failure reaches the threshold: no more local restarts.
	if n, migrate := g.RecordFailure("asterisk", "health sip", "timeout"); n != 2 || !migrate {
		t.Fatalf("RecordFailure = %d %v, want 2 true", n, migrate)
	}
	if err := g.Recover(ctx, "asterisk"); !errors.Is(err, ErrMigrationThreshold) {
		t.Fatalf("Recover past threshold = %v, want ErrMigrationThreshold", err)
	}

	// Failures expire after the failure timeout.
	now = now.Add(11 * time.Minute)
	if n := g.FailCount("asterisk"); n != 0 {
		t.Fatalf("fail count after failure timeout = %d, want 0", n)
	}

	// And cleanup resets them at once.
	g.RecordFailure("asterisk", "monitor", "x")
	g.RecordFailure("asterisk", "monitor", "x")
	if _, m := g.NeedsMigration(); !m {
		t.Fatal("threshold not reached")
	}
	if err := g.Cleanup(""); err != nil {
		t.Fatal(err)
	}
	if _, m := g.NeedsMigration(); m || g.FailCount("asterisk") != 0 {
		t.Fatal("cleanup did not reset fail counts")
	}
	if err := g.Cleanup("nosuch"); err == nil || !strings.Contains(err.Error(), "asterisk") {
		t.Fatalf("Cleanup of unknown resource = %v, want an error listing the resources", err)
	}
}

func TestOperationTimeoutsKillTheProcessTree(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := writeScript(t, dir, "hang.sh", `
case "$1" in
start|status)
	sleep 300 &
	echo $! >`+pidFile+`
	wait
	;;
stop) exit 0 ;;
esac`)
	r := mustNew(t, Spec{Name: "hung", Type: "exec", Params: map[string]string{"path": script},
		StartTimeout: 300 * time.Millisecond, MonitorTimeout: 300 * time.Millisecond})

	err := r.Start(ctx)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Start error = %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), "start_timeout") || !strings.Contains(err.Error(), "300ms") {
		t.Fatalf("error %q should name the timeout and how to raise it", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitFor(t, "the script's child to be killed", 5*time.Second, func() bool { return !alive(pid) })

	st := r.Monitor(ctx)
	if st.State != StateFailed || !strings.Contains(st.Detail, "timed out") {
		t.Fatalf("hung monitor = %v, want failed: timed out", st)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func TestGroupValidation(t *testing.T) {
	dir := t.TempDir()
	a := mustNew(t, Spec{Name: "a", Type: "exec", Params: map[string]string{"path": lsbScript(t, dir, "a", filepath.Join(dir, "l"))}})
	for _, tc := range []struct {
		name string
		res  []Resource
		cfg  GroupConfig
		want string
	}{
		{"bad name", []Resource{a}, GroupConfig{}, "not a valid group name"},
		{"g", nil, GroupConfig{}, "no resources"},
		{"g", []Resource{a, a}, GroupConfig{}, `lists resource "a" twice`},
		{"g", []Resource{a}, GroupConfig{FailureTimeout: -time.Second}, "negative failure timeout"},
	} {
		if _, err := NewGroup(tc.name, tc.res, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewGroup(%q) = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}
