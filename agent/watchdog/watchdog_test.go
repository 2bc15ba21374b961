package watchdog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func file(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKicksAreRateLimited: opening feeds the device once; a burst of
// kicks within a quarter of the timeout writes nothing more; after it,
// the next kick writes.
func TestKicksAreRateLimited(t *testing.T) {
	p := file(t)
	d, err := Open(p, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(true)
	for range 1000 {
		d.Kick()
	}
	if got := read(t, p); got != "k" {
		t.Fatalf("after open and a burst: %q, want one kick", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for read(t, p) == "k" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		d.Kick()
	}
	if got := read(t, p); got != "kk" {
		t.Fatalf("after a quarter of the timeout: %q, want a second kick", got)
	}
}

// TestCloseDisarmsOnlyWhenAsked: the magic 'V' is written on a disarming
// close only; a plain close leaves the watchdog armed.
func TestCloseDisarmsOnlyWhenAsked(t *testing.T) {
	for _, disarm := range []bool{true, false} {
		p := file(t)
		d, err := Open(p, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(disarm); err != nil {
			t.Fatal(err)
		}
		d.Kick() // after Close: nothing
		got := read(t, p)
		if strings.HasSuffix(got, "V") != disarm || strings.Count(got, "k") != 1 {
			t.Errorf("close(disarm=%v) wrote %q", disarm, got)
		}
	}
}

func TestOpenErrorsSayWhatToDo(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "none"), time.Second); err == nil || !strings.Contains(err.Error(), "softdog") {
		t.Errorf("missing device: %v, want a hint to load a driver", err)
	}
	if _, err := Open(file(t), 0); err == nil || !strings.Contains(err.Error(), "not positive") {
		t.Errorf("zero timeout: %v", err)
	}
}

// TestInspect: a file is a stand-in; a character device that is not a
// watchdog fails the WDIOC_SETTIMEOUT test with an error naming it; a
// missing device without a way to load softdog is an error that says what
// to do.
func TestInspect(t *testing.T) {
	p := file(t)
	r, err := Inspect(p, time.Second)
	if err != nil || r.Kind != KindStandIn || !strings.Contains(r.String(), "stand-in for tests that resets nothing") {
		t.Errorf("file: %v, %v; want a stand-in", r, err)
	}
	if _, err := Inspect("/dev/null", time.Second); err == nil || !strings.Contains(err.Error(), "/dev/null") || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("/dev/null: %v, want the WDIOC_SETTIMEOUT test to fail naming it", err)
	}
	t.Setenv("PATH", t.TempDir()) // no modprobe
	missing := filepath.Join(t.TempDir(), "watchdog")
	r, err = Inspect(missing, time.Second)
	if err == nil || r.Kind != KindMissing || !strings.Contains(err.Error(), "no modprobe") || !strings.Contains(err.Error(), "CONFIG_SOFT_WATCHDOG") {
		t.Errorf("missing, no modprobe: %v, %v", r, err)
	}
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), "no modprobe") {
		t.Errorf("Load without modprobe: %v", err)
	}
}

// TestLoadSoftdog: a missing device is loaded with modprobe softdog (here
// a script standing for the kernel, which creates the device node), and
// check-config's Inspect says the agent will load it.
func TestLoadSoftdog(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "watchdog")
	log := filepath.Join(dir, "modprobe.log")
	script := "#!/bin/sh\necho \"$@\" >>" + log + "\n[ \"$1\" = --dry-run ] && exit 0\n[ \"$1\" = softdog ] && : >" + dev + "\n"
	if err := os.WriteFile(filepath.Join(dir, "modprobe"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	r, err := Inspect(dev, time.Second)
	if err != nil || r.Kind != KindMissing || !strings.Contains(r.String(), "modprobe softdog") {
		t.Fatalf("Inspect: %v, %v; want missing, loaded at start", r, err)
	}
	if _, err := os.Stat(dev); err == nil {
		t.Fatal("Inspect loaded softdog: check-config must change nothing")
	}
	did, err := Load(dev)
	if err != nil || did != "loaded softdog with modprobe" {
		t.Fatalf("Load: %q, %v", did, err)
	}
	if got := read(t, log); got != "--dry-run softdog\n--dry-run softdog\nsoftdog\n" {
		t.Errorf("modprobe was run as %q", got)
	}
	if did, err := Load(dev); did != "" || err != nil {
		t.Errorf("Load with the device there: %q, %v; want nothing done", did, err)
	}
}
