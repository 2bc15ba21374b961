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
