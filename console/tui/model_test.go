package tui

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/hatui/hatui/protocol"
)

func TestSelectionFollowsNodeWhenRowsResort(t *testing.T) {
	m := newTestModel(t, Options{}, 120, 40)
	press(m, "down", "down") // pbx-a1 → pbx-a2 → pbx-b1
	if got := m.Selected(); got != "pbx-b1" {
		t.Fatalf("selected %q after two downs, want pbx-b1", got)
	}

	// The agent now lists site-b first, and a new node appears ahead of
	// pbx-b1: the row index of pbx-b1 changes, the selection must not.
	s := fixture(t)
	s.Sites[0], s.Sites[1] = s.Sites[1], s.Sites[0]
	c := &s.Sites[0].Clusters[0]
	c.Nodes = append([]protocol.Node{{Name: "pbx-b0", Site: "site-b", Cluster: "pbx-b", Member: protocol.MemberAlive, State: protocol.StateOnline}}, c.Nodes...)
	m.Update(ChangeMsg{protocol.Change{Seq: 2, Snapshot: s}})
	if got := m.Selected(); got != "pbx-b1" {
		t.Fatalf("selected %q after re-sort, want pbx-b1", got)
	}
	if l := selectedLine(t, m); !strings.Contains(l, "pbx-b1") {
		t.Fatalf("cursor row is %q, want pbx-b1's", l)
	}
	press(m, "down")
	if got := m.Selected(); got != "pbx-b2" {
		t.Fatalf("down from pbx-b1 in the new order selected %q, want pbx-b2", got)
	}

	// When the selected node disappears the cursor stays where it was,
	// on a neighbour, instead of jumping to the top.
	s2 := fixture(t)
	s2.Sites[0], s2.Sites[1] = s2.Sites[1], s2.Sites[0]
	s2.Sites[0].Clusters[0].Nodes = s2.Sites[0].Clusters[0].Nodes[:1] // pbx-b2 gone
	m.Update(SnapshotMsg{s2})
	if got := m.Selected(); got != "pbx-a1" {
		t.Fatalf("selected %q after pbx-b2 vanished, want its next neighbour pbx-a1", got)
	}
}

func TestStandbyDialogStartsOnCancel(t *testing.T) {
	be := &fakeBackend{result: protocol.Result{OK: true, Message: "pbx-a1 is in standby"}}
	m := newTestModel(t, Options{Backend: be}, 80, 24)

	press(m, "s")
	if m.dialog == nil {
		t.Fatal("s did not open a dialog")
	}
	scr := screen(m)
	for _, want := range []string{"standby pbx-a1", "[ Cancel ]", "Confirm", "pbx-a1 is online (alive) and runs pbx, database master."} {
		if !strings.Contains(scr, want) {
			t.Fatalf("dialog lacks %q:\n%s", want, scr)
		}
	}
	if strings.Contains(scr, "[ Confirm ]") {
		t.Fatalf("dialog starts on Confirm:\n%s", scr)
	}
	// Enter on Cancel does nothing but close.
	drain(t, m, press(m, "enter"))
	if m.dialog != nil || len(be.sent()) != 0 {
		t.Fatalf("enter on Cancel: dialog open=%v, sent=%v", m.dialog != nil, be.sent())
	}
	if !strings.Contains(m.status, "cancelled") {
		t.Fatalf("status after cancel = %q", m.status)
	}

	// Esc cancels too, even after moving to Confirm.
	press(m, "s", "right", "esc")
	if m.dialog != nil || len(be.sent()) != 0 {
		t.Fatalf("esc: dialog open=%v, sent=%v", m.dialog != nil, be.sent())
	}

	// Moving to Confirm and pressing Enter sends exactly the action named.
	press(m, "s", "right")
	if !strings.Contains(screen(m), "[ Confirm ]") {
		t.Fatalf("right did not move to Confirm:\n%s", screen(m))
	}
	drain(t, m, press(m, "enter"))
	want := []protocol.Action{{Verb: "standby", Args: []string{"pbx-a1"}}}
	if got := be.sent(); len(got) != 1 || got[0].Verb != want[0].Verb || !slices.Equal(got[0].Args, want[0].Args) {
		t.Fatalf("sent %+v, want %+v", got, want)
	}
	if !strings.Contains(m.status, "standby pbx-a1: done — pbx-a1 is in standby") {
		t.Fatalf("status after result = %q", m.status)
	}
	if !strings.Contains(screen(m), "standby pbx-a1: done") {
		t.Fatalf("event log lacks the result:\n%s", screen(m))
	}
}

func TestIrreversibleWantsNameTyped(t *testing.T) {
	be := &fakeBackend{result: protocol.Result{OK: true}}
	m := newTestModel(t, Options{Backend: be}, 80, 24)
	press(m, ":")
	typeText(m, "fence pbx-b2")
	press(m, "enter")
	if m.dialog == nil || !m.dialog.typed {
		t.Fatalf("fence did not open a typed dialog:\n%s", screen(m))
	}
	if !strings.Contains(screen(m), "Type pbx-b2 to confirm") {
		t.Fatalf("typed dialog does not name the node:\n%s", screen(m))
	}
	// Neither Enter alone, nor a prefix, nor a confirm-button move sends.
	press(m, "enter")
	typeText(m, "pbx-b")
	press(m, "right", "enter")
	if len(be.sent()) != 0 || m.dialog == nil {
		t.Fatalf("sent %v with a wrong name (dialog open=%v)", be.sent(), m.dialog != nil)
	}
	if !strings.Contains(screen(m), "that is not pbx-b2") {
		t.Fatalf("wrong name not explained:\n%s", screen(m))
	}
	press(m, "backspace", "backspace", "backspace", "backspace", "backspace")
	typeText(m, "pbx-b2")
	drain(t, m, press(m, "enter"))
	if got := be.sent(); len(got) != 1 || got[0].String() != "fence pbx-b2" {
		t.Fatalf("sent %v, want fence pbx-b2", got)
	}
}

func TestGeoKeys(t *testing.T) {
	be := &fakeBackend{result: protocol.Result{OK: true}}
	m := newTestModel(t, Options{Backend: be}, 120, 40)
	press(m, "c")
	if m.dialog == nil || !m.dialog.typed || m.dialog.cmd.Action.String() != "geo confirm site-b" {
		t.Fatalf("c did not open the typed geo confirm dialog: %+v", m.dialog)
	}
	press(m, "esc", "a")
	if m.dialog == nil || !m.dialog.typed || m.dialog.cmd.Action.String() != "geo abort site-b" {
		t.Fatalf("a did not open the typed geo abort dialog for the pending failover to site-b: %+v", m.dialog)
	}
	if !strings.Contains(screen(m), "Service stays at site-a") {
		t.Fatalf("the abort dialog does not say what stays:\n%s", screen(m))
	}
	press(m, "esc")

	// Without a pending failover both keys say why they do nothing.
	s := fixture(t)
	s.Geo.Pending = nil
	m.Update(SnapshotMsg{s})
	press(m, "c")
	if m.dialog != nil || !strings.Contains(m.status, "no geo failover is pending") {
		t.Fatalf("c without a pending failover: dialog=%v status=%q", m.dialog != nil, m.status)
	}
	if len(be.sent()) != 0 {
		t.Fatalf("sent %v", be.sent())
	}
}

func TestReadOnlyRefusesEveryAction(t *testing.T) {
	be := &fakeBackend{}
	m := newTestModel(t, Options{ReadOnly: true, Demo: true, Backend: be}, 80, 24)
	for _, k := range []string{"s", "o", "m", "c", "a", "K", "R", "X", "H"} {
		press(m, k)
		if m.dialog != nil {
			t.Fatalf("%s opened a dialog in read-only mode", k)
		}
		if !strings.Contains(m.status, "read-only") {
			t.Fatalf("%s in read-only mode said %q, want the reason", k, m.status)
		}
	}
	press(m, ":")
	typeText(m, "standby pbx-a2")
	press(m, "enter")
	if !strings.Contains(m.status, `read-only mode: "standby" changes the deployment`) {
		t.Fatalf(":standby in read-only mode said %q", m.status)
	}
	press(m, "esc", ":")
	typeText(m, "status pbx-a2")
	press(m, "enter")
	if m.input != nil || !strings.HasPrefix(m.status, "pbx-a2: standby") || m.Selected() != "pbx-a2" {
		t.Fatalf(":status in read-only mode: input open=%v status=%q selected=%q", m.input != nil, m.status, m.Selected())
	}
	if len(be.sent()) != 0 {
		t.Fatalf("read-only console sent %v", be.sent())
	}
	if !strings.Contains(screen(m), "READ-ONLY") {
		t.Fatalf("read-only mode is not shown:\n%s", screen(m))
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		line   string
		status string // substring of the status line after enter
		open   bool   // the prompt stays open (an error to fix)
		dialog string // the action a dialog opened for, if any
	}{
		{line: "standby", status: "standby needs a NODE — usage: standby NODE", open: true},
		{line: "stanby pbx-a2", status: `did you mean "standby"?`, open: true},
		{line: "standby pbx-z9", status: `no node named "pbx-z9" in acme — nodes: pbx-a1, pbx-a2`, open: true},
		{line: "maintenance pbx-a1 perhaps", status: "usage: maintenance NODE on|off", open: true},
		{line: "demo kill pbx-a1", status: "demo verbs exist only in hatui --demo", open: true},
		{line: "geo confirm site-z", status: `no site named "site-z"`, open: true},
		// Refused before a dialog asks to confirm anything.
		{line: "reseed pbx-zz", status: `no node named "pbx-zz" in acme`, open: true},
		{line: "reseed arb-1", status: "arb-1 runs no database: reseed works on a node with a [database] section — nodes with a database: pbx-a1", open: true},
		{line: "reseed pbx-a2", dialog: "reseed pbx-a2"},
		{line: "standby pbx-a1", dialog: "standby pbx-a1"},
		{line: "geo confirm site-b", dialog: "geo confirm site-b"},
		{line: "status", status: "acme: 5 nodes configured, 3 online, 1 standby, 0 maintenance, 1 OFFLINE"},
		{line: "help fence", status: "usage: fence NODE"},
		{line: "help geo", status: "usage: geo confirm SITE | geo abort"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			m := newTestModel(t, Options{Backend: &fakeBackend{}}, 80, 24)
			press(m, ":")
			typeText(m, tt.line)
			press(m, "enter")
			if (m.input != nil) != tt.open {
				t.Fatalf("prompt open = %v, want %v (status %q)", m.input != nil, tt.open, m.status)
			}
			if !strings.Contains(m.status, tt.status) {
				t.Fatalf("status = %q, want it to contain %q", m.status, tt.status)
			}
			if tt.open && !strings.Contains(screen(m), ":"+tt.line) {
				t.Fatalf("the line to fix is not kept on screen:\n%s", screen(m))
			}
			switch {
			case tt.dialog == "" && m.dialog != nil:
				t.Fatalf("unexpected dialog for %q", m.dialog.cmd.Action)
			case tt.dialog != "" && (m.dialog == nil || m.dialog.cmd.Action.String() != tt.dialog):
				t.Fatalf("dialog = %+v, want one for %q", m.dialog, tt.dialog)
			}
		})
	}
}

func TestCommandLineHelpOpensHelp(t *testing.T) {
	m := newTestModel(t, Options{}, 80, 24)
	press(m, ":")
	typeText(m, "help")
	press(m, "enter")
	if !m.showHelp {
		t.Fatal(":help did not open the help screen")
	}
}

func TestHelpShowsDisabledReason(t *testing.T) {
	m := newTestModel(t, Options{}, 80, 24)
	press(m, "down") // pbx-a2, in standby
	press(m, "?")
	scr := screen(m)
	for _, want := range []string{
		"Help · Nodes pane",
		"standby pbx-a2 — disabled: pbx-a2 is already in standby",
		"online pbx-a2",
		"confirm the geo failover to site-b now",
	} {
		if !strings.Contains(scr, want) {
			t.Fatalf("help lacks %q:\n%s", want, scr)
		}
	}
	if strings.Contains(scr, "online pbx-a2 — disabled") {
		t.Fatalf("help disables online on a standby node:\n%s", scr)
	}
	if strings.Contains(scr, "demo:") {
		t.Fatalf("help lists demo keys outside the demo:\n%s", scr)
	}
	press(m, "esc")
	if m.showHelp {
		t.Fatal("esc did not close help")
	}
	// Help follows the focused pane.
	press(m, "tab", "tab", "?")
	if !strings.Contains(screen(m), "Help · Events pane") {
		t.Fatalf("help after tab tab is not the events pane's:\n%s", screen(m))
	}
	if strings.Contains(screen(m), "standby pbx-a2") {
		t.Fatal("events pane help lists node actions")
	}
}

func TestFilterNarrowsList(t *testing.T) {
	m := newTestModel(t, Options{}, 80, 24)
	press(m, "/")
	typeText(m, "b2")
	scr := screen(m)
	if !strings.Contains(scr, "pbx-b2") || strings.Contains(scr, "pbx-a1 online") || strings.Contains(scr, "arb-1  online") {
		t.Fatalf("filter b2 did not narrow the list:\n%s", scr)
	}
	if !strings.Contains(scr, `Nodes · 1 of 5 · filter "b2"`) {
		t.Fatalf("filter is not shown in the pane title:\n%s", scr)
	}
	if m.Selected() != "pbx-b2" {
		t.Fatalf("selected %q under filter, want pbx-b2", m.Selected())
	}
	press(m, "enter") // keep the filter
	if m.input != nil || m.nodes.filter != "b2" {
		t.Fatalf("enter: prompt open=%v filter=%q", m.input != nil, m.nodes.filter)
	}
	// A site name matches all its nodes.
	press(m, "/", "backspace", "backspace")
	typeText(m, "site-a")
	press(m, "enter")
	if got := len(m.nodes.nodeRows); got != 2 {
		t.Fatalf("filter site-a shows %d nodes, want 2", got)
	}
	press(m, "esc") // clears the filter
	if m.nodes.filter != "" || len(m.nodes.nodeRows) != 5 {
		t.Fatalf("esc left filter %q with %d nodes", m.nodes.filter, len(m.nodes.nodeRows))
	}
	press(m, "/")
	typeText(m, "zzz")
	if !strings.Contains(screen(m), `no node matches "zzz"`) {
		t.Fatalf("empty filter result is not explained:\n%s", screen(m))
	}
}

func TestQuit(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m := newTestModel(t, Options{}, 80, 24)
		cmd := press(m, k)
		if cmd == nil {
			t.Fatalf("%s returned no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Fatalf("%s did not return tea.Quit", k)
		}
	}
	// q while typing a filter types a q; ctrl+c still quits.
	m := newTestModel(t, Options{}, 80, 24)
	press(m, "/")
	if cmd := press(m, "q"); cmd != nil {
		if _, ok := cmd().(tea.QuitMsg); ok {
			t.Fatal("q in the filter prompt quit")
		}
	}
	if _, ok := press(m, "ctrl+c")().(tea.QuitMsg); !ok {
		t.Fatal("ctrl+c in the filter prompt did not quit")
	}
}

// blockingBackend holds an action until released, so the test can look at
// the screen while it runs.
type blockingBackend struct {
	release chan struct{}
}

func (b *blockingBackend) Do(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error) {
	progress(protocol.Progress{Step: "forward", Message: "asking pbx-a1's agent", Percent: -1})
	select {
	case <-b.release:
		return protocol.Result{OK: true, Message: "done"}, nil
	case <-ctx.Done():
		return protocol.Result{}, ctx.Err()
	}
}

func TestActionProgressAndQuitWhileRunning(t *testing.T) {
	be := &blockingBackend{release: make(chan struct{})}
	m := newTestModel(t, Options{Backend: be, Demo: true}, 80, 24)
	cmd := press(m, "K") // demo keys need no dialog
	batch, ok := cmd().(tea.BatchMsg)
	if !ok || len(batch) != 2 {
		t.Fatalf("K returned %T, want a batch of the action and its progress reader", cmd())
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- batch[0]() }()
	m.Update(batch[1]()) // the first progress report
	if !strings.Contains(m.status, "demo kill pbx-a1: forward — asking pbx-a1's agent") {
		t.Fatalf("status while running = %q", m.status)
	}
	// q while an action runs warns first.
	if cmd := press(m, "q"); cmd != nil {
		t.Fatal("first q while an action runs quit at once")
	}
	if !strings.Contains(m.status, "demo kill pbx-a1 still running") {
		t.Fatalf("first q said %q", m.status)
	}
	close(be.release)
	m.Update(<-done)
	if !strings.Contains(m.status, "demo kill pbx-a1: done") {
		t.Fatalf("status after the action = %q", m.status)
	}
	if _, ok := press(m, "q")().(tea.QuitMsg); !ok {
		t.Fatal("q after the action ended did not quit")
	}
}

func TestActionErrorsAreWorded(t *testing.T) {
	tests := []struct {
		err  error
		res  protocol.Result
		want string
	}{
		{err: &protocol.Error{Code: protocol.CodeRefused, Message: "pbx-a1 holds the only running copy of pbx", Hint: "bring pbx-a2 online first"},
			want: "standby pbx-a1: REFUSED — pbx-a1 holds the only running copy of pbx (bring pbx-a2 online first)"},
		{err: &protocol.Error{Code: protocol.CodeUnreachable, Message: "agent pbx-a1 did not answer in time"},
			want: "standby pbx-a1: UNREACHABLE — agent pbx-a1 did not answer in time"},
		{res: protocol.Result{OK: false, Message: "resource asterisk did not stop"},
			want: "standby pbx-a1: FAILED — resource asterisk did not stop"},
		{err: fmt.Errorf("connection reset"), want: "standby pbx-a1: FAILED — connection reset"},
	}
	for _, tt := range tests {
		be := &fakeBackend{result: tt.res, err: tt.err}
		m := newTestModel(t, Options{Backend: be}, 80, 24)
		press(m, "s", "right")
		drain(t, m, press(m, "enter"))
		if m.status != tt.want {
			t.Errorf("status = %q, want %q", m.status, tt.want)
		}
	}
}

func TestNoBackendSaysSo(t *testing.T) {
	m := newTestModel(t, Options{}, 80, 24)
	press(m, "s", "right", "enter")
	if !strings.Contains(m.status, "no agent connection") {
		t.Fatalf("status = %q", m.status)
	}
}

func TestDemoKeysOnlyInDemo(t *testing.T) {
	be := &fakeBackend{result: protocol.Result{OK: true}}
	m := newTestModel(t, Options{Backend: be}, 80, 24)
	drain(t, m, press(m, "K"))
	drain(t, m, press(m, "X"))
	if len(be.sent()) != 0 {
		t.Fatalf("demo keys acted outside the demo: %v", be.sent())
	}

	m = newTestModel(t, Options{Backend: be, Demo: true}, 80, 24)
	press(m, "down", "down", "down") // pbx-b2, OFFLINE
	for _, k := range []string{"K", "R", "X", "H"} {
		drain(t, m, press(m, k))
	}
	var got []string
	for _, a := range be.sent() {
		got = append(got, a.String())
	}
	// K on an OFFLINE node is refused with a reason; the rest are sent.
	want := []string{"demo revive pbx-b2", "demo cut site-b", "demo heal site-b"}
	if !slices.Equal(got, want) {
		t.Fatalf("demo keys sent %q, want %q", got, want)
	}
}

func TestConnectionAndEvents(t *testing.T) {
	m := newTestModel(t, Options{}, 120, 40)
	m.Update(ConnMsg{Via: "pbx-b1", Connected: true, Note: "reconnected through pbx-b1 after pbx-a1 stopped answering"})
	scr := screen(m)
	if !strings.Contains(scr, "via pbx-b1") || !strings.Contains(scr, "reconnected through pbx-b1 after pbx-a1 stopped answering") {
		t.Fatalf("reconnect not shown:\n%s", scr)
	}
	m.Update(ConnMsg{Via: "pbx-b1", Connected: false})
	if scr := screen(m); !strings.Contains(scr, "!! DISCONNECTED from pbx-b1: the state shown is from 12:00:00") {
		t.Fatalf("disconnect not shown loudly:\n%s", scr)
	}

	// A change's events are appended once, even when its snapshot repeats
	// the agent's recent log.
	ev := protocol.Event{Time: fixedNow.Add(time.Second), Node: "pbx-a1", Kind: "standby", Severity: protocol.SevInfo, Message: "pbx-a1 put in standby by ops"}
	s := fixture(t)
	s.Events = append(s.Events, ev)
	m.Update(ChangeMsg{protocol.Change{Seq: 3, Events: []protocol.Event{ev}, Snapshot: s}})
	if n := strings.Count(screen(m), "pbx-a1 put in standby by ops"); n != 1 {
		t.Fatalf("event shown %d times, want once:\n%s", n, screen(m))
	}
	// The newest event is the last line of the log.
	lines := strings.Split(screen(m), "\n")
	var last string
	for _, l := range lines[:len(lines)-2] {
		if regexp.MustCompile(`^\d\d:\d\d:\d\d `).MatchString(l) {
			last = l
		}
	}
	if !strings.Contains(last, "pbx-a1 put in standby by ops") {
		t.Fatalf("newest event is not the last log line; last is %q", last)
	}
}

func TestCountdownTicks(t *testing.T) {
	now := fixedNow
	m := newTestModel(t, Options{Now: func() time.Time { return now }}, 120, 40)
	if !strings.Contains(screen(m), "in 1:55:00") {
		t.Fatalf("countdown missing:\n%s", screen(m))
	}
	now = now.Add(61 * time.Second)
	_, cmd := m.Update(tickMsg(now))
	if cmd == nil {
		t.Fatal("tick did not re-arm")
	}
	if scr := screen(m); !strings.Contains(scr, "in 1:53:59") || strings.Contains(scr, "in 1:55:00") {
		t.Fatalf("countdown did not move with the clock:\n%s", scr)
	}
	now = fixedNow.Add(2 * time.Hour)
	m.Update(tickMsg(now))
	if scr := screen(m); !strings.Contains(scr, "EXPIRED") || !strings.Contains(scr, "timer expired") {
		t.Fatalf("expired timer not shown:\n%s", scr)
	}
}

func TestResizeKeepsScreenExact(t *testing.T) {
	m := newTestModel(t, Options{Demo: true}, 80, 24)
	for _, sz := range []struct{ w, h int }{{80, 24}, {120, 40}, {200, 60}, {60, 20}, {100, 30}, {40, 12}, {81, 25}} {
		m.Update(tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
		for _, state := range []func(){func() {}, func() { press(m, "?") }, func() { press(m, "esc", "s") }, func() { press(m, "esc", ":") }} {
			state()
			checkSize(t, screen(m), sz.w, sz.h)
		}
		press(m, "esc")
	}
	m.Update(tea.WindowSizeMsg{Width: 30, Height: 8})
	if scr := screen(m); !strings.Contains(scr, "too small") {
		t.Fatalf("tiny terminal not explained:\n%s", scr)
	}
}

func TestColourAlwaysComesWithAWord(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	m := newTestModel(t, Options{}, 120, 40)
	raw := m.View().Content
	sgrColour := regexp.MustCompile(`\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;)[0-9;]*m`)
	if !sgrColour.MatchString(raw) {
		t.Fatal("colour mode renders no colour")
	}
	// Every coloured span holds a word, not just a glyph or a space.
	span := regexp.MustCompile(`\x1b\[[0-9;]*(?:3[0-7]|9[0-7])[0-9;]*m([^\x1b]*)\x1b\[[0-9;]*m`)
	for _, sm := range span.FindAllStringSubmatch(raw, -1) {
		if !regexp.MustCompile(`[A-Za-z0-9]`).MatchString(sm[1]) && strings.TrimSpace(sm[1]) != "" &&
			!regexp.MustCompile(`^[─━│·•…?/:\s]+$`).MatchString(sm[1]) && !regexp.MustCompile(`^[█░]+$`).MatchString(sm[1]) {
			t.Errorf("coloured span without a word: %q", sm[1])
		}
	}
	for _, word := range []string{"online", "standby", "OFFLINE", "NO QUORUM", "RISK"} {
		if !strings.Contains(screen(m), word) {
			t.Errorf("state word %q missing", word)
		}
	}

	t.Setenv("NO_COLOR", "1")
	m = newTestModel(t, Options{}, 120, 40)
	if raw := m.View().Content; sgrColour.MatchString(raw) {
		t.Fatalf("NO_COLOR set but colour rendered: %q", sgrColour.FindString(raw))
	}
	if !strings.Contains(screen(m), "OFFLINE") {
		t.Fatal("NO_COLOR lost the state words")
	}
}

func TestWorksUnderTeaProgram(t *testing.T) {
	var out bytes.Buffer
	m := New(Options{Now: func() time.Time { return fixedNow }})
	p := tea.NewProgram(m, tea.WithInput(nil), tea.WithOutput(&out), tea.WithWindowSize(80, 24),
		tea.WithoutSignals(), tea.WithEnvironment([]string{"TERM=dumb"}))
	errc := make(chan error, 1)
	go func() {
		_, err := p.Run()
		errc <- err
	}()
	// Messages are handled in order, so the snapshot is applied before q.
	p.Send(SnapshotMsg{fixture(t)})
	p.Send(ConnMsg{Via: "pbx-a1", Connected: true})
	p.Send(keyMsg("q"))
	deadline := time.After(10 * time.Second)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("program ended with %v", err)
		}
	case <-deadline:
		p.Kill()
		t.Fatal("q did not end the program")
	}
	if m.Selected() != "pbx-a1" {
		t.Fatalf("selected %q after the program ran, want pbx-a1", m.Selected())
	}
	if !strings.Contains(out.String(), "pbx-a1") {
		t.Fatalf("the program rendered nothing of the snapshot:\n%q", out.String())
	}
}

func TestAgentStringsCannotDriveTheTerminal(t *testing.T) {
	s := fixture(t)
	s.Sites[0].Clusters[0].Nodes[0].Name = "pbx-a1\x1b[2J"
	s.Sites[0].Clusters[0].Nodes[0].Tags = map[string]string{"k\x1b": "v\x07"}
	s.Events = append(s.Events, protocol.Event{Time: fixedNow, Severity: protocol.SevInfo,
		Message: "line one\nline two \u202eevil\x9b31m"})
	m := newTestModel(t, Options{NoColor: true}, 120, 40)
	m.Update(SnapshotMsg{s})
	m.Update(ConnMsg{Via: "pbx\x1b]0;pwned\x07", Connected: true})
	raw := m.View().Content
	for _, bad := range []string{"\x1b[2J", "\x1b]0;", "\x07", "\u202e", "\x9b", "line one\nline two"} {
		if strings.Contains(raw, bad) {
			t.Errorf("screen carries %q from the agent", bad)
		}
	}
	if !strings.Contains(screen(m), "pbx-a1?[2J") || !strings.Contains(screen(m), "line one line two ?evil?31m") {
		t.Errorf("cleaned strings are not shown:\n%s", screen(m))
	}
	if s.Sites[0].Clusters[0].Nodes[0].Name != "pbx-a1\x1b[2J" {
		t.Error("the host's snapshot was modified")
	}
	checkSize(t, screen(m), 120, 40)
}

func TestLongListsScroll(t *testing.T) {
	m := New(Options{Now: func() time.Time { return fixedNow }})
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m.Update(SnapshotMsg{bigSnapshot(500)})
	press(m, "G")
	if got := m.Selected(); got != "n-009-24-1" {
		t.Fatalf("G selected %q, want the last node", got)
	}
	if l := selectedLine(t, m); !strings.Contains(l, "n-009-24-1") {
		t.Fatalf("the last node is not on screen: %q", l)
	}
	press(m, "g", "pgdown")
	if l := selectedLine(t, m); !strings.Contains(l, m.Selected()) || m.Selected() == "n-000-00-0" {
		t.Fatalf("pgdown: selected %q, cursor row %q", m.Selected(), l)
	}
	checkSize(t, screen(m), 80, 24)

	// The event log follows the newest until scrolled back.
	press(m, "tab", "tab")
	if !strings.Contains(screen(m), "event 199") {
		t.Fatalf("newest event not shown:\n%s", screen(m))
	}
	press(m, "k", "k")
	scr := screen(m)
	if strings.Contains(scr, "event 199") || !strings.Contains(scr, "2 newer below") {
		t.Fatalf("scrolling back did not move the log:\n%s", scr)
	}
	press(m, "G")
	if !strings.Contains(screen(m), "event 199") {
		t.Fatal("end did not return to the newest event")
	}
}

// TestGroupKeys: switchover, cleanup and fence from the node list open
// the dialog for the selected node's group, or say why not.
func TestGroupKeys(t *testing.T) {
	be := &fakeBackend{result: protocol.Result{OK: true}}
	m := newTestModel(t, Options{Backend: be}, 120, 40)
	// pbx-a1 holds group pbx and is the node the console talks to.
	for _, tc := range []struct{ key, why string }{
		{"w", "pbx-a1 already holds pbx"},
		{"F", "pbx-a1 is the node this console talks to"},
	} {
		press(m, tc.key)
		if m.dialog != nil || !strings.Contains(m.status, tc.why) {
			t.Errorf("%s on pbx-a1: dialog=%v status %q, want refused: %s", tc.key, m.dialog != nil, m.status, tc.why)
		}
	}
	// Cleanup changes no placement: it is sent without a dialog.
	drain(t, m, press(m, "u"))
	if got := be.sent(); len(got) != 1 || got[0].String() != "cleanup pbx" {
		t.Fatalf("u sent %v, want cleanup pbx", got)
	}
	press(m, "j") // pbx-a2, in standby
	press(m, "w")
	if m.dialog != nil || !strings.Contains(m.status, "pbx-a2 is standby") {
		t.Errorf("w on a standby node: dialog=%v status %q", m.dialog != nil, m.status)
	}
	press(m, "F")
	if m.dialog == nil || !m.dialog.typed || !strings.Contains(screen(m), "Type pbx-a2 to confirm") {
		t.Fatalf("F did not open a typed fence dialog for pbx-a2:\n%s", screen(m))
	}
	if len(be.sent()) != 1 {
		t.Fatalf("sent %v before any confirmation", be.sent())
	}
}
