package tui

import (
	"fmt"
	"sort"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/hatui/hatui/protocol"
)

// maxEvents bounds the log the console keeps; the agent keeps the real one.
const maxEvents = 1000

// eventPane is the event log: the agent's events and the console's own
// (actions sent, their results, connection changes), oldest first, with
// the newest always in view unless the operator scrolls back.
type eventPane struct {
	env   *env
	nav   navKeys
	w, h  int
	focus bool

	events []protocol.Event
	seen   map[eventKey]struct{}
	// back is how many events the view is scrolled back from the newest;
	// 0 follows new events as they come.
	back int
	// filter keeps the events whose line contains it (any case); shown
	// holds them, oldest first.
	filter string
	shown  []protocol.Event
}

// setFilter keeps only the events that mention f (time, node, who,
// kind, message or result), "" all of them.
func (p *eventPane) setFilter(f string) {
	p.filter = strings.TrimSpace(f)
	p.back = 0
	p.refilter()
}

func (p *eventPane) refilter() {
	if p.filter == "" {
		p.shown = p.events
		return
	}
	f := strings.ToLower(p.filter)
	p.shown = p.shown[:0:0]
	for _, e := range p.events {
		if strings.Contains(strings.ToLower(e.Node+" "+e.User+" "+e.Kind+" "+e.Message+" "+e.Result+" "+string(e.Severity)), f) {
			p.shown = append(p.shown, e)
		}
	}
}

type eventKey struct {
	at                  int64
	node, kind, message string
}

func keyOf(e protocol.Event) eventKey {
	return eventKey{at: e.Time.UnixNano(), node: e.Node, kind: e.Kind, message: e.Message}
}

func newEventPane(e *env) *eventPane {
	return &eventPane{env: e, nav: newNavKeys("newest (follow)"), seen: map[eventKey]struct{}{}}
}

// SetSize gives the pane its area, title line included.
func (p *eventPane) SetSize(w, h int) { p.w, p.h = w, h }

func (p *eventPane) Focus() { p.focus = true }
func (p *eventPane) Blur()  { p.focus = false }

// add merges events into the log in time order, skipping any already
// there: a watch's first snapshot and its changes overlap, and a
// reconnect through another agent repeats the recent log.
func (p *eventPane) add(evs ...protocol.Event) {
	added := 0
	for _, e := range evs {
		k := keyOf(e)
		if _, dup := p.seen[k]; dup {
			continue
		}
		p.seen[k] = struct{}{}
		// Most events are newer than everything held: search from the end.
		i := sort.Search(len(p.events), func(i int) bool { return p.events[i].Time.After(e.Time) })
		p.events = append(p.events, protocol.Event{})
		copy(p.events[i+1:], p.events[i:])
		p.events[i] = e
		added++
	}
	if p.back > 0 {
		p.back += added // stay on the lines the operator is reading
	}
	if len(p.events) > maxEvents {
		drop := len(p.events) - maxEvents
		for _, e := range p.events[:drop] {
			delete(p.seen, keyOf(e))
		}
		p.events = append(p.events[:0], p.events[drop:]...)
	}
	p.refilter()
	p.back = min(p.back, max(0, len(p.shown)-1))
}

// Update scrolls the log.
func (p *eventPane) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok || len(p.shown) == 0 {
		return nil
	}
	// Positions count from the oldest; back counts from the newest.
	last := len(p.shown) - 1
	if pos, moved := p.nav.move(k, last-p.back, len(p.shown), p.h-2); moved {
		p.back = last - pos
	}
	return nil
}

// ShortHelp is the footer's list for this pane.
func (p *eventPane) ShortHelp() []key.Binding {
	return bindings(&p.nav.up, &p.nav.down, &p.nav.last)
}

// FullHelp lists every binding of the pane.
func (p *eventPane) FullHelp() [][]key.Binding { return [][]key.Binding{bindings(p.nav.all()...)} }

func (p *eventPane) helpGroups() []helpGroup { return []helpGroup{{"Scroll", p.nav.all()}} }

// View renders the newest events that fit, ending with the newest unless
// scrolled back.
func (p *eventPane) View() string {
	body := max(p.h-1, 0)
	title := fmt.Sprintf("Events · %d", len(p.events))
	if p.filter != "" {
		title = fmt.Sprintf("Events · %d of %d matching %q (esc clears)", len(p.shown), len(p.events), p.filter)
	}
	if p.back > 0 {
		title += fmt.Sprintf(" · %d newer below (end follows)", p.back)
	}
	lines := make([]string, 0, p.h)
	lines = append(lines, p.env.st.rule(title, p.w, p.focus))
	end := len(p.shown) - p.back
	start := max(0, end-body)
	switch {
	case len(p.events) == 0:
		lines = append(lines, p.env.st.dim.Render("no events yet"))
	case len(p.shown) == 0:
		lines = append(lines, p.env.st.dim.Render("no event matches the filter"))
	}
	nodeW := 0
	for _, e := range p.shown[start:end] {
		nodeW = max(nodeW, len(e.Node))
	}
	nodeW = min(nodeW, 12)
	wide := p.w >= 100
	for _, e := range p.shown[start:end] {
		lines = append(lines, p.line(e, nodeW, wide))
	}
	return strings.Join(block(lines, p.w, p.h), "\n")
}

func (p *eventPane) line(e protocol.Event, nodeW int, wide bool) string {
	st := p.env.st
	s := st.dim.Render(clock(e.Time, p.env.now())) + " " + fit(st.severity(e.Severity), 4) + " "
	if nodeW > 0 {
		s += fit(e.Node, nodeW) + " "
	}
	if wide {
		s += st.dim.Render(fit(e.Kind, 9)) + " "
	}
	// An audit entry says who acted and how it ended.
	if e.User != "" {
		s += st.dim.Render(e.User + ": ")
	}
	s += e.Message
	if e.Result != "" && !strings.Contains(e.Message, e.Result) {
		s += st.dim.Render(" → " + e.Result)
	}
	return s
}
