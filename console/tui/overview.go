package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/hatui/hatui/console/cli"
	"github.com/hatui/hatui/protocol"
)

// Overview is the NOC's screen: one row per deployment, every pending geo
// failover first and loudest with its countdown, sorted by the time left.
// Enter opens a deployment's own screen (a [Model] kept up to date all
// along, so it opens at once); Esc comes back. A new alarm (a pending geo
// failover, an UNCLEAN node, a failed fence) rings the terminal bell and
// flashes its row until someone acknowledges it here (space); the
// acknowledgement is this console's alone.
type Overview struct {
	opts   Options
	st     *styles
	rows   []*deployment
	cursor string // the selected deployment, by name: rows move as they sort
	open   *deployment
	width  int
	height int
	tick   int // flashes alternate on it
	keys   overviewKeys
	help   bool
}

// deployment is one row of the overview and the screen behind it.
type deployment struct {
	name      string
	m         *Model
	connected bool
	known     bool
	note      string
	// alarms are the alarm texts seen so far: true once acknowledged.
	alarms map[string]bool
	// checkOf is the snapshot check was made of: a check is made once
	// per snapshot, not once per frame and sort comparison.
	checkOf *protocol.Snapshot
	check   cli.CheckResult
}

// checked judges the deployment's snapshot as --exec check would.
func (d *deployment) checked() cli.CheckResult {
	if s := d.m.snap; s != d.checkOf {
		d.checkOf, d.check = s, cli.CheckResult{}
		if s != nil {
			d.check = cli.Check(s)
		}
	}
	return d.check
}

type overviewKeys struct {
	up, down, open, back, ack, help, quit act
}

// DeploymentMsg carries a message for one deployment of an overview: the
// snapshots, changes and connection news of its session.
type DeploymentMsg struct {
	Index int
	Msg   tea.Msg
}

// NewOverview builds the overview of deployments named names; backends
// carry each one's actions, in the same order.
func NewOverview(opts Options, names []string, backends []Backend) *Overview {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	o := &Overview{opts: opts, st: newStyles(opts.NoColor), width: 80, height: 24}
	o.keys = overviewKeys{
		up:   newAct([]string{"up", "k"}, "↑/k", "previous deployment"),
		down: newAct([]string{"down", "j"}, "↓/j", "next deployment"),
		open: newAct([]string{"enter"}, "enter", "open the deployment"),
		back: newAct([]string{"esc"}, "esc", "back to the overview"),
		ack:  newAct([]string{"space"}, "space", "acknowledge its alarms (this console only)"),
		help: newAct([]string{"?"}, "?", "help"),
		quit: newAct([]string{"q", "ctrl+c"}, "q", "quit"),
	}
	for i, n := range names {
		o.rows = append(o.rows, &deployment{name: n, m: New(Options{
			ReadOnly: opts.ReadOnly, Demo: opts.Demo, NoColor: opts.NoColor, Now: opts.Now, Backend: backends[i],
		}), alarms: map[string]bool{}})
	}
	if len(o.rows) > 0 {
		o.cursor = o.rows[0].name
	}
	return o
}

// Init starts the tick that runs the countdowns and the flashing.
func (o *Overview) Init() tea.Cmd { return tick() }

// Update routes a message: a deployment's news to its screen (and its
// row), keys to the open deployment or to the overview.
func (o *Overview) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		o.width, o.height = msg.Width, msg.Height
		for _, d := range o.rows {
			d.m.Update(msg)
		}
		return o, nil
	case DeploymentMsg:
		if msg.Index < 0 || msg.Index >= len(o.rows) {
			return o, nil
		}
		d := o.rows[msg.Index]
		if c, ok := msg.Msg.(ConnMsg); ok {
			d.known, d.connected, d.note = true, c.Connected, cleanString(c.Note)
		}
		_, cmd := d.m.Update(msg.Msg)
		return o, tea.Batch(cmd, o.alarm(d))
	case tickMsg:
		o.tick++
		for _, d := range o.rows {
			d.m.Update(msg) // its own tick is not scheduled: this one drives it
		}
		return o, tick()
	case tea.KeyPressMsg:
		return o, o.key(msg)
	}
	if o.open != nil {
		_, cmd := o.open.m.Update(msg)
		return o, cmd
	}
	return o, nil
}

// alarm rings the bell when a deployment has an alarm not seen before.
func (o *Overview) alarm(d *deployment) tea.Cmd {
	ring := false
	for _, a := range d.checked().Critical {
		if _, seen := d.alarms[a]; !seen {
			d.alarms[a] = false
			ring = true
		}
	}
	if ring {
		return tea.Raw("\a")
	}
	return nil
}

// unacked reports whether d has an alarm still present and not yet
// acknowledged. The alarms are the critical findings of a check: a
// pending geo failover, an UNCLEAN node, a failed fence, a group that
// should serve and does not.
func (d *deployment) unacked() bool {
	for _, a := range d.checked().Critical {
		if !d.alarms[a] {
			return true
		}
	}
	return false
}

func (o *Overview) key(k tea.KeyPressMsg) tea.Cmd {
	if o.open != nil {
		// Esc leaves the deployment unless its screen has a dialog, a
		// prompt, help or a filter open for Esc to close first.
		if pressed(k, o.keys.back.Binding) && o.open.m.idle() {
			o.open = nil
			return nil
		}
		_, cmd := o.open.m.Update(k)
		return cmd
	}
	if o.help {
		o.help = false
		return nil
	}
	sorted := o.sorted()
	i := slices.IndexFunc(sorted, func(d *deployment) bool { return d.name == o.cursor })
	switch {
	case pressed(k, o.keys.quit.Binding):
		for _, d := range o.rows {
			d.m.cancel()
		}
		return tea.Quit
	case pressed(k, o.keys.up.Binding) && i > 0:
		o.cursor = sorted[i-1].name
	case pressed(k, o.keys.down.Binding) && i >= 0 && i < len(sorted)-1:
		o.cursor = sorted[i+1].name
	case pressed(k, o.keys.open.Binding) && i >= 0:
		o.open = sorted[i]
		o.ackAll(o.open) // opening it is seeing it
	case pressed(k, o.keys.ack.Binding) && i >= 0:
		o.ackAll(sorted[i])
	case pressed(k, o.keys.help.Binding):
		o.help = true
	}
	return nil
}

func (o *Overview) ackAll(d *deployment) {
	for _, a := range d.checked().Critical {
		d.alarms[a] = true
	}
}

// rank orders the rows: pending geo failovers first, by the time left,
// then the unreachable, then by how bad the check is, then by name.
func (o *Overview) sorted() []*deployment {
	out := slices.Clone(o.rows)
	left := func(d *deployment) (time.Duration, bool) {
		if f := pending(d.m.snap); f != nil {
			return f.Expires.Sub(o.opts.Now()), true
		}
		return 0, false
	}
	// grade: the higher, the worse, the sooner on the screen.
	grade := func(d *deployment) int {
		switch {
		case d.known && !d.connected:
			return 4
		case d.m.snap == nil:
			return 1 // not heard from yet: above the healthy
		}
		switch d.checked().Code {
		case cli.CheckCritical:
			return 3
		case cli.CheckOK:
			return 0
		}
		return 2 // a warning, or a check that could not tell
	}
	slices.SortStableFunc(out, func(a, b *deployment) int {
		la, pa := left(a)
		lb, pb := left(b)
		switch {
		case pa && pb:
			return int((la - lb) / time.Millisecond)
		case pa:
			return -1
		case pb:
			return 1
		}
		ga, gb := grade(a), grade(b)
		if ga != gb {
			return gb - ga
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// pending returns a snapshot's pending geo failover, or nil.
func pending(s *protocol.Snapshot) *protocol.Failover {
	if s == nil || s.Geo == nil || s.Geo.Pending == nil {
		return nil
	}
	if f := s.Geo.Pending; f.State == "" || f.State == "pending" {
		return f
	}
	return nil
}

// View draws the overview, or the open deployment's screen.
func (o *Overview) View() tea.View {
	if o.open != nil {
		v := o.open.m.View()
		v.WindowTitle = "hatui · " + o.open.name
		return v
	}
	v := tea.NewView(o.render())
	v.AltScreen = true
	v.WindowTitle = fmt.Sprintf("hatui · %d deployments", len(o.rows))
	return v
}

func (o *Overview) render() string {
	st := o.st
	w, h := o.width, o.height
	now := o.opts.Now()
	sorted := o.sorted()
	var nPending, nDown int
	var loud []string
	for _, d := range sorted {
		if f := pending(d.m.snap); f != nil {
			nPending++
			left := f.Expires.Sub(now)
			s := st.loud.Render("!! GEO FAILOVER") + " " + d.name + fmt.Sprintf(": %s → %s ", f.From, f.To)
			if left > 0 {
				s += "by itself in " + st.loud.Render(countdown(left))
			} else {
				s += st.loud.Render("timer expired") + ": failing over now"
			}
			loud = append(loud, fit(s+st.dim.Render(" · enter to act"), w))
		}
		if d.known && !d.connected {
			nDown++
		}
	}
	title := fmt.Sprintf("hatui · %d deployments", len(o.rows))
	if nPending > 0 {
		title += " · " + st.loud.Render(fmt.Sprintf("%d pending geo failover", nPending))
	}
	if nDown > 0 {
		title += " · " + st.bad.Render(fmt.Sprintf("%d unreachable", nDown))
	}
	clk := now.Local().Format(time.TimeOnly)
	lines := []string{fit(title, w-len(clk)-1) + " " + clk}
	lines = append(lines, loud...)
	lines = append(lines, st.rule("Deployments", w, true))
	if o.help {
		for _, a := range []*act{&o.keys.up, &o.keys.down, &o.keys.open, &o.keys.back, &o.keys.ack, &o.keys.quit} {
			lines = append(lines, "  "+st.key.Render(fit(a.Help().Key, 8))+" "+a.Help().Desc)
		}
		lines = append(lines, "", st.dim.Render("in an open deployment its own keys apply (? there lists them); esc comes back here"))
		return strings.Join(block(lines, w, h), "\n")
	}
	nameW := 10
	for _, d := range o.rows {
		nameW = max(nameW, min(len(d.name), 24))
	}
	lines = append(lines, st.dim.Render("  "+fit("NAME", nameW)+"  "+fit("STATE", 12)+"  "+fit("NODES", 7)+"  "+fit("GEO", 14)+"  WHAT"))
	for _, d := range sorted {
		lines = append(lines, o.row(d, nameW, w, now))
	}
	footer := st.key.Render("↑/↓") + st.dim.Render(" select · ") + st.key.Render("enter") + st.dim.Render(" open · ") +
		st.key.Render("space") + st.dim.Render(" acknowledge · ") + st.key.Render("?") + st.dim.Render(" help · ") +
		st.key.Render("q") + st.dim.Render(" quit")
	body := block(lines, w, max(h-1, 1))
	return strings.Join(append(body, fit(footer, w)), "\n")
}

// row renders one deployment's line.
func (o *Overview) row(d *deployment, nameW, w int, now time.Time) string {
	st := o.st
	mark := "  "
	if d.name == o.cursor {
		mark = st.cursor.Render("> ")
	}
	name := fit(d.name, nameW)
	flash := d.unacked()
	if flash && o.tick%2 == 0 {
		name = st.loud.Render(name)
	}
	state, nodes, geo, what := "", "", "", ""
	s := d.m.snap
	switch {
	case d.known && !d.connected:
		state = st.bad.Render(fit("UNREACHABLE", 12))
		what = d.note
		if s != nil {
			what += st.dim.Render(" · last seen " + clock(s.Time, now))
		}
	case s == nil:
		state = st.dim.Render(fit("connecting", 12))
		what = d.note
	default:
		r := d.checked()
		switch {
		case pending(s) != nil:
			state = st.loud.Render(fit("GEO FAILOVER", 12))
		case r.Code == cli.CheckCritical:
			state = st.bad.Render(fit("CRITICAL", 12))
		case r.Code == cli.CheckWarning:
			state = st.warn.Render(fit("WARNING", 12))
		default:
			state = st.ok.Render(fit("OK", 12))
		}
		c := countNodes(s)
		nodes = fmt.Sprintf("%d/%d", c.up, c.total)
		if g := s.Geo; g != nil {
			geo = "ticket " + g.Ticket.Holder
			if f := pending(s); f != nil {
				geo = fmt.Sprintf("%s→%s %s", f.From, f.To, countdown(f.Expires.Sub(now)))
			}
		}
		// What the operator must act on first, then the cut that explains
		// it, then what only needs watching.
		parts := slices.Clone(r.Critical)
		if s.Partition != nil {
			parts = append(parts, "partition")
		}
		what = strings.Join(append(parts, r.Warning...), " · ")
		if flash {
			what = st.loud.Render("NEW ") + what
		}
	}
	return fit(mark+name+"  "+state+"  "+fit(nodes, 7)+"  "+fit(geo, 14)+"  "+what, w)
}

// idle reports whether Esc has nothing to close on this screen: no
// dialog, prompt, help or filter.
func (m *Model) idle() bool {
	return m.dialog == nil && m.input == nil && !m.showHelp && m.nodes.filter == "" && m.events.filter == ""
}

// ShortHelp lists the overview's keys.
func (o *Overview) ShortHelp() []key.Binding {
	return bindings(&o.keys.up, &o.keys.down, &o.keys.open, &o.keys.ack, &o.keys.quit)
}
