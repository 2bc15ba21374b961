package resource

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyExec copies a testdata file to dst with mode 0755.
func copyExec(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// probeRoot makes an OCF root holding the test agent as hatui/Probe.
func probeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	copyExec(t, "testdata/ocf-probe.sh", filepath.Join(root, "resource.d", "hatui", "Probe"))
	return root
}

// TestSystemdStandIn checks the systemctl exit-code and word mapping
// against a stand-in systemctl on PATH: systemd is not PID 1 in this
// container, so the real one cannot start units here.
func TestSystemdStandIn(t *testing.T) {
	ctx := testCtx(t)
	bin := t.TempDir()
	copyExec(t, "testdata/systemctl-standin.sh", filepath.Join(bin, "systemctl"))
	state := t.TempDir()
	t.Setenv("SYSTEMCTL_STATE", state)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))

	r := mustNew(t, Spec{Name: "asterisk", Type: "systemd", Params: map[string]string{"unit": "asterisk.service"}})
	if st := r.Monitor(ctx); st.State != StateStopped || st.Detail != "inactive" {
		t.Fatalf("monitor before start = %v, want stopped: inactive", st)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Monitor(ctx); st.State != StateRunning || st.Detail != "active" {
		t.Fatalf("monitor after start = %v, want running: active", st)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Monitor(ctx); st.State != StateStopped {
		t.Fatalf("monitor after stop = %v", st)
	}

	broken := mustNew(t, Spec{Name: "broken", Type: "systemd", Params: map[string]string{"unit": "broken.service"}})
	err := broken.Start(ctx)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(err.Error(), "Job for broken.service failed") {
		t.Fatalf("failed start = %v, want exit 1 with systemctl's reason", err)
	}
	if st := broken.Monitor(ctx); st.State != StateFailed || !strings.Contains(st.Detail, "journalctl") {
		t.Fatalf("failed unit monitor = %v, want failed", st)
	}

	gone := mustNew(t, Spec{Name: "gone", Type: "systemd", Params: map[string]string{"unit": "gone.service"}})
	if err := gone.Stop(ctx); err != nil {
		t.Fatalf("stop of a unit that is not loaded = %v, want success (it is not running)", err)
	}
	if err := gone.Start(ctx); err == nil {
		t.Fatal("start of a unit that does not exist succeeded")
	}

	want := []string{"is-active asterisk.service", "start asterisk.service", "is-active asterisk.service",
		"stop asterisk.service", "is-active asterisk.service", "start broken.service", "is-active broken.service",
		"stop gone.service", "start gone.service"}
	if got := readLines(t, filepath.Join(state, "calls")); !slices.Equal(got, want) {
		t.Fatalf("systemctl calls =\n%q\nwant\n%q", got, want)
	}
}

// TestSystemdRealSystemctl runs the real systemctl: on a machine where
// systemd is not PID 1 (this container, CI) the monitor must report a
// failure that says so, not "stopped".
func TestSystemdRealSystemctl(t *testing.T) {
	need(t, "systemctl")
	r := mustNew(t, Spec{Name: "nx", Type: "systemd", Params: map[string]string{"unit": "hatui-test-nonexistent.service"}})
	st := r.Monitor(testCtx(t))
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		if st.State != StateStopped {
			t.Fatalf("monitor of a unit that does not exist = %v, want stopped", st)
		}
		return
	}
	if st.State != StateFailed || !strings.Contains(st.Detail, "systemd") {
		t.Fatalf("monitor without systemd = %v, want failed saying systemd is not running", st)
	}
}

// startRunsvdir runs a real runsvdir on svdir for the test's duration.
func startRunsvdir(t *testing.T, svdir string, services ...string) {
	t.Helper()
	cmd := exec.Command(need(t, "runsvdir"), svdir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range services {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			exec.CommandContext(ctx, "sv", "-w", "5", "force-shutdown", filepath.Join(svdir, s)).Run()
			cancel()
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	for _, s := range services {
		waitFor(t, "runsv to supervise "+s, 15*time.Second, func() bool {
			_, err := os.Stat(filepath.Join(svdir, s, "supervise", "ok"))
			return err == nil
		})
	}
}

func TestRunitRealRunsvdir(t *testing.T) {
	need(t, "sv")
	ctx := testCtx(t)
	svdir := t.TempDir()
	svc := filepath.Join(svdir, "pbx")
	writeScript(t, svc, "run", "exec sleep 300\n")
	// "down": runsv must not start it before the resource does.
	os.WriteFile(filepath.Join(svc, "down"), nil, 0o644)
	startRunsvdir(t, svdir, "pbx")

	r := mustNew(t, Spec{Name: "pbx", Type: "runit", Params: map[string]string{"service": "pbx", "svdir": svdir},
		StartTimeout: 10 * time.Second, StopTimeout: 10 * time.Second})
	if st := r.Monitor(ctx); st.State != StateStopped {
		t.Fatalf("monitor before start = %v, want stopped", st)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Monitor(ctx); st.State != StateRunning || !strings.Contains(st.Detail, "(pid ") {
		t.Fatalf("monitor after start = %v, want running with a pid", st)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Monitor(ctx); st.State != StateStopped {
		t.Fatalf("monitor after stop = %v, want stopped", st)
	}

	// An absolute service directory works the same.
	abs := mustNew(t, Spec{Name: "pbx2", Type: "runit", Params: map[string]string{"service": svc}})
	if st := abs.Monitor(ctx); st.State != StateStopped {
		t.Fatalf("absolute service monitor = %v", st)
	}

	// A service runsvdir does not know fails with sv's reason.
	nx := mustNew(t, Spec{Name: "nx", Type: "runit", Params: map[string]string{"service": "nope", "svdir": svdir}})
	if err := nx.Start(ctx); err == nil || !strings.Contains(err.Error(), "unable to change to service directory") {
		t.Fatalf("start of unknown service = %v", err)
	}
	if st := nx.Monitor(ctx); st.State != StateFailed {
		t.Fatalf("monitor of unknown service = %v, want failed", st)
	}
}

// TestOCFDummyAgent drives Debian's heartbeat/Dummy agent.
func TestOCFDummyAgent(t *testing.T) {
	root := os.Getenv("OCF_ROOT")
	if root == "" {
		root = DefaultOCFRoot
	}
	if _, err := os.Stat(filepath.Join(root, "resource.d/heartbeat/Dummy")); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("heartbeat/Dummy not installed (apt-get install resource-agents)")
		}
		t.Fatal("heartbeat/Dummy not installed: CI must apt-get install resource-agents")
	}
	ctx := testCtx(t)
	state := filepath.Join(t.TempDir(), "dummy.state")
	r := mustNew(t, Spec{Name: "dummy1", Type: "ocf", Params: map[string]string{"agent": "Dummy", "state": state}})
	if st := r.Monitor(ctx); st.State != StateStopped {
		t.Fatalf("monitor before start = %v, want stopped (OCF_NOT_RUNNING)", st)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("Dummy did not get OCF_RESKEY_state: %v", err)
	}
	if st := r.Monitor(ctx); st.State != StateRunning {
		t.Fatalf("monitor after start = %v, want running", st)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second stop = %v, want success", err)
	}
	if st := r.Monitor(ctx); st.State != StateStopped {
		t.Fatalf("monitor after stop = %v", st)
	}

	// Its meta-data lists its parameters: a misspelt one is caught at start-up.
	_, err := New(Spec{Name: "dummy2", Type: "ocf", Params: map[string]string{"agent": "Dummy", "stat": state}})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "stat" || !strings.Contains(ce.Want, "state") {
		t.Fatalf("misspelt parameter = %v, want a ConfigError for stat listing state", err)
	}
}

// TestOCFExitCodesAndEnvironment uses the test agent to check the OCF
// environment and the exit-code mapping.
func TestOCFExitCodesAndEnvironment(t *testing.T) {
	ctx := testCtx(t)
	root := probeRoot(t)
	state := filepath.Join(t.TempDir(), "probe.state")
	spec := func(name string, extra ...string) Spec {
		p := map[string]string{"agent": "Probe", "provider": "hatui", "ocf_root": root, "state": state}
		for i := 0; i+1 < len(extra); i += 2 {
			p[extra[i]] = extra[i+1]
		}
		return Spec{Name: name, Type: "ocf", Params: p, StartTimeout: 7 * time.Second}
	}
	r := mustNew(t, spec("probe1", "verbose", "yes"))
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	env := readLines(t, state)
	for _, want := range []string{"OCF_ROOT=" + root, "OCF_RESOURCE_INSTANCE=probe1", "OCF_RESOURCE_TYPE=Probe",
		"OCF_RESOURCE_PROVIDER=hatui", "OCF_RESKEY_state=" + state, "OCF_RESKEY_verbose=yes", "OCF_RA_VERSION_MAJOR=1"} {
		if !slices.Contains(env, want) {
			t.Errorf("agent environment lacks %s:\n%s", want, strings.Join(env, "\n"))
		}
	}
	if !slices.ContainsFunc(env, func(s string) bool {
		return strings.HasPrefix(s, "OCF_RESKEY_CRM_meta_timeout=") && len(s) > len("OCF_RESKEY_CRM_meta_timeout=3")
	}) {
		t.Errorf("agent environment lacks the operation timeout in ms")
	}
	if st := r.Monitor(ctx); st.State != StateRunning {
		t.Fatalf("monitor = %v", st)
	}

	for _, tc := range []struct {
		rc     string
		state  State
		detail string
	}{
		{"1", StateFailed, "OCF_ERR_GENERIC (1): Probe(probe-rc): ERROR: forced exit 1"},
		{"6", StateFailed, "OCF_ERR_CONFIGURED (6)"},
		{"7", StateStopped, ""},
		{"8", StateRunning, "running as master"},
		{"9", StateFailed, "OCF_FAILED_MASTER (9)"},
		{"42", StateFailed, "not an OCF exit code (42)"},
	} {
		st := mustNew(t, spec("probe-rc", "monitor_rc", tc.rc)).Monitor(ctx)
		if st.State != tc.state || !strings.Contains(st.Detail, tc.detail) {
			t.Errorf("monitor exit %s = %v, want %s containing %q", tc.rc, st, tc.state, tc.detail)
		}
	}

	// A start failure carries the code's name and the agent's ERROR line.
	bad := spec("probe-bad")
	bad.Params["state"] = "/nonexistent/dir/state"
	err := mustNew(t, bad).Start(ctx)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Meaning != "OCF_ERR_GENERIC" || !strings.Contains(ee.Output, "cannot create state file") {
		t.Fatalf("failed start = %v", err)
	}

	// Meta-data validation: required, integer and boolean parameters.
	for _, tc := range []struct {
		spec Spec
		key  string
		want string
	}{
		{func() Spec { s := spec("v1"); delete(s.Params, "state"); return s }(), "state", "requires it"},
		{spec("v2", "monitor_rc", "seven"), "monitor_rc", "not an integer"},
		{spec("v3", "verbose", "maybe"), "verbose", "not a boolean"},
	} {
		_, err := New(tc.spec)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s) = %v, want ConfigError for %s saying %q", tc.spec.Name, err, tc.key, tc.want)
		}
	}
}
