package tui

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/hatui/hatui/protocol"
)

// TestGoldenMainScreen pins the main screen at the smallest supported
// size and at a comfortable one. Run with -update to rewrite the goldens
// after an intended change, and read the diff.
func TestGoldenMainScreen(t *testing.T) {
	for _, size := range []struct{ w, h int }{{120, 40}, {80, 24}} {
		t.Run(fmt.Sprintf("%dx%d", size.w, size.h), func(t *testing.T) {
			t.Setenv("NO_COLOR", "")
			m := newTestModel(t, Options{}, size.w, size.h)
			m.Update(ConnMsg{Via: "pbx-a1", Connected: true})
			got := screen(m)
			checkSize(t, got, size.w, size.h)
			golden(t, fmt.Sprintf("main_%dx%d.golden", size.w, size.h), got)
		})
	}
}

// checkSize asserts the screen is exactly w×h cells: a line too long
// wraps in the terminal and shifts everything below it.
func checkSize(t *testing.T, s string, w, h int) {
	t.Helper()
	lines := strings.Split(s, "\n")
	if len(lines) != h {
		t.Errorf("screen has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n != w {
			t.Errorf("line %d is %d cells wide, want %d: %q", i+1, n, w, l)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("writing golden: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (run go test -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("screen differs from %s (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// TestGoldenDatabasePane pins the database lines of the resources pane
// for the states an operator must act on (the fixture is --exec's, in
// console/cli/testdata, so both consoles are pinned on the same states):
// slots and a filling pg_wal disk on the master, a down standby seen by
// the master, one catching up, one that needs a re-seed, one never
// reached; each notice wrapped to the pane with what to do.
func TestGoldenDatabasePane(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "cli", "testdata", "databases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dbs []protocol.Database
	if err := json.Unmarshal(b, &dbs); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NO_COLOR", "")
	p := newDetailPane(&env{st: newStyles(true), now: func() time.Time { return fixedNow }})
	p.SetSize(100, 40)
	var lines []string
	for _, d := range dbs {
		for _, l := range p.database(d, fixedNow.In(time.UTC)) {
			lines = append(lines, strings.TrimRight(ansi.Strip(l), " "))
		}
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > 100 {
			t.Errorf("line %d is %d cells wide, more than the pane's 100: %q", i+1, n, l)
		}
	}
	golden(t, "databases_100.golden", strings.Join(lines, "\n")+"\n")
}
