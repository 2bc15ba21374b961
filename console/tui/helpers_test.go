package tui

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/hatui/hatui/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixedNow is the frozen clock of every test: the fixture's snapshot time.
var fixedNow = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

// fixture loads the test deployment: two sites of two PBX nodes plus an
// arbitrator, pbx-a2 in standby, pbx-b2 OFFLINE, a pending geo failover
// and a database being re-seeded.
func fixture(t testing.TB) *protocol.Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "state.json"))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	var s protocol.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decoding fixture: %v", err)
	}
	return &s
}

// newTestModel builds a model on the frozen clock, sized w×h, holding the
// fixture.
func newTestModel(t testing.TB, opts Options, w, h int) *Model {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	m := New(opts)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.Update(SnapshotMsg{fixture(t)})
	return m
}

// screen renders the model as plain text, colour and attributes
// stripped the way a NoTTY colour profile writes them.
func screen(m *Model) string {
	var b bytes.Buffer
	w := &colorprofile.Writer{Forward: &b, Profile: colorprofile.NoTTY}
	w.Write([]byte(m.View().Content))
	return b.String()
}

// keyMsg builds the key press bubbletea would deliver for a key name.
func keyMsg(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "left":
		return tea.KeyPressMsg{Code: tea.KeyLeft}
	case "right":
		return tea.KeyPressMsg{Code: tea.KeyRight}
	case "pgdown":
		return tea.KeyPressMsg{Code: tea.KeyPgDown}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	}
	r := []rune(s)
	if len(r) != 1 {
		panic("keyMsg: unknown key " + s)
	}
	return tea.KeyPressMsg{Code: r[0], Text: s}
}

// press sends keys one by one and returns the last command.
func press(m *Model, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		_, cmd = m.Update(keyMsg(k))
	}
	return cmd
}

// typeText types a string into whatever has the keys.
func typeText(m *Model, s string) {
	for _, r := range s {
		if r == ' ' {
			m.Update(keyMsg("space"))
			continue
		}
		m.Update(keyMsg(string(r)))
	}
}

// selectedLine returns the node row carrying the cursor marker.
func selectedLine(t testing.TB, m *Model) string {
	t.Helper()
	for _, l := range strings.Split(screen(m), "\n") {
		// The node list is the left column; its cursor row starts "> ".
		if strings.HasPrefix(l, "> ") {
			return l
		}
	}
	t.Fatalf("no cursor row on screen:\n%s", screen(m))
	return ""
}

// fakeBackend records actions and answers them as told. It stands where
// the host's agent connection would; the real one is exercised by the
// host's tests.
type fakeBackend struct {
	mu       sync.Mutex
	actions  []protocol.Action
	progress []protocol.Progress
	result   protocol.Result
	err      error
}

func (f *fakeBackend) Do(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error) {
	f.mu.Lock()
	f.actions = append(f.actions, a)
	reports, res, err := f.progress, f.result, f.err
	f.mu.Unlock()
	for _, p := range reports {
		progress(p)
	}
	return res, err
}

func (f *fakeBackend) sent() []protocol.Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]protocol.Action(nil), f.actions...)
}

// drain runs a command the way the bubbletea runtime would, feeding every
// message it yields back into the model, until nothing is left. Ticks are
// not followed (they would never end).
func drain(t testing.TB, m *Model, cmd tea.Cmd) {
	t.Helper()
	queue := []tea.Cmd{cmd}
	for steps := 0; len(queue) > 0; steps++ {
		if steps > 1000 {
			t.Fatal("drain: commands did not settle")
		}
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		msg := c()
		switch msg := msg.(type) {
		case nil, tickMsg:
		case tea.BatchMsg:
			queue = append(queue, msg...)
		default:
			_, next := m.Update(msg)
			queue = append(queue, next)
		}
	}
}
