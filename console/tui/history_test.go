package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

// historyBackend answers history requests from a fixed log.
type historyBackend struct {
	fakeBackend
	asked []protocol.HistoryRequest
	log   []protocol.Event
}

func (h *historyBackend) History(ctx context.Context, req protocol.HistoryRequest) (*protocol.History, error) {
	h.asked = append(h.asked, req)
	var out []protocol.Event
	for _, e := range h.log {
		if !e.Time.Before(req.Since) && (req.Node == "" || e.Node == req.Node) {
			out = append(out, e)
		}
	}
	return &protocol.History{Events: out}, nil
}

// TestHistoryPane: :history reads the deployment's history into the event
// log (who acted and how it ended on audit entries), focuses it, and / then
// filters the events, not the nodes; esc clears it.
func TestHistoryPane(t *testing.T) {
	b := &historyBackend{log: []protocol.Event{
		{Time: fixedNow.Add(-90 * time.Minute), Node: "pbx-a1", Kind: "audit", Severity: protocol.SevInfo, User: "alice", Result: "ok", Message: "standby pbx-a2"},
		{Time: fixedNow.Add(-40 * time.Minute), Node: "pbx-b1", Kind: "audit", Severity: protocol.SevWarning, User: "bob", Result: "refused", Message: "fence pbx-b2: watchers may not act"},
		{Time: fixedNow.Add(-30 * time.Minute), Node: "pbx-a2", Kind: "member", Severity: protocol.SevInfo, Message: "pbx-a2 joined"},
	}}
	m := newTestModel(t, Options{Backend: b}, 120, 40)
	press(m, ":")
	typeText(m, "history --since 2h")
	drain(t, m, press(m, "enter"))
	if len(b.asked) != 1 || !b.asked[0].Since.Equal(fixedNow.Add(-2*time.Hour)) {
		t.Fatalf("history asked %+v, want one request since 2h before now", b.asked)
	}
	scr := screen(m)
	for _, want := range []string{"alice: standby pbx-a2", "bob: fence pbx-b2: watchers may not act → refused", "pbx-a2 joined", "history: 3 entries since"} {
		if !strings.Contains(scr, want) {
			t.Errorf("screen lacks %q:\n%s", want, scr)
		}
	}
	if m.focused() != m.events {
		t.Fatal("the event log does not have the focus after :history")
	}
	press(m, "/")
	typeText(m, "bob")
	press(m, "enter")
	scr = screen(m)
	if !strings.Contains(scr, "bob: fence pbx-b2") || strings.Contains(scr, "alice: standby") || !strings.Contains(scr, `matching "bob"`) {
		t.Errorf("/bob in the event log did not narrow it to bob's entry:\n%s", scr)
	}
	if !strings.Contains(scr, "pbx-a1") {
		t.Errorf("filtering the events filtered the nodes:\n%s", scr)
	}
	press(m, "esc")
	if scr = screen(m); !strings.Contains(scr, "alice: standby pbx-a2") {
		t.Errorf("esc did not clear the event filter:\n%s", scr)
	}
}
