// Package tui is hatui's terminal screen: crm_mon at a glance (cluster
// summary, nodes with their states, resources, tickets) plus what an
// operator needs to act safely: the dead man's countdown of a pending geo
// failover, database replication, switches, an event log, and keys and a
// `:` command line that go through the same verb table as `hatui --exec`.
//
// The package holds only the bubbletea model. The host (console/cmd/hatui)
// owns connections: it feeds state in with Program.Send ([SnapshotMsg],
// [ChangeMsg], [ConnMsg]) and carries actions out through a [Backend].
// The model is built soft-serve style from components that each own their
// key bindings, Update, View and SetSize; help is built from the focused
// component's bindings, including the disabled ones and why.
//
// The model works with tea.NewProgram and equally with direct Update and
// View calls, which is how its tests drive it.
package tui

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/hatui/hatui/console/verb"
	"github.com/hatui/hatui/protocol"
)

// Backend carries an action to the deployment. The host implements it
// over whatever connection is current (client.Conn.Do has this shape).
// progress may be called from Do's goroutine until Do returns, never
// after.
type Backend interface {
	Do(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error)
}

// Historian is a Backend that can also read the deployment's history
// from an agent; with it, :history fills the event log.
type Historian interface {
	History(ctx context.Context, req protocol.HistoryRequest) (*protocol.History, error)
}

// historyMsg carries the answer to a history request.
type historyMsg struct {
	req protocol.HistoryRequest
	h   *protocol.History
	err error
}

// Options configure the screen.
type Options struct {
	// ReadOnly removes every action: action keys only say why they do
	// nothing, and the command line refuses verbs that change anything.
	ReadOnly bool
	// Demo enables the fault-injection keys and the demo verbs.
	Demo bool
	// NoColor renders without colour (bold and reverse video remain). New
	// also sets it when the NO_COLOR environment variable is not empty.
	NoColor bool
	// Backend runs actions. Without one, actions report that there is no
	// agent to send them to.
	Backend Backend
	// Now is the clock, for the dead man's countdown and relative times.
	// Tests freeze it; nil means time.Now.
	Now func() time.Time
}

// SnapshotMsg delivers the full state of the deployment.
type SnapshotMsg struct{ *protocol.Snapshot }

// ConnMsg says which agent the console talks through, and whether that
// connection is up. Note, when set, is shown and logged, e.g.
// "reconnected through pbx-b1 after pbx-a1 stopped answering".
type ConnMsg struct {
	Via       string
	Connected bool
	Note      string
}

// ChangeMsg delivers one step of a watch: a new full snapshot and the
// events that explain it.
type ChangeMsg struct{ protocol.Change }

// tickMsg re-renders once a second so that countdowns run.
type tickMsg time.Time

// actionProgressMsg carries one progress report of a running action.
type actionProgressMsg struct {
	id int
	p  protocol.Progress
	ch <-chan protocol.Progress
}

// actionDoneMsg ends a running action.
type actionDoneMsg struct {
	id  int
	a   protocol.Action
	res protocol.Result
	err error
}

// whyReadOnly is the reason every action key gives in read-only mode.
const whyReadOnly = "read-only mode (--read-only)"

type level int

const (
	levelInfo level = iota
	levelOK
	levelWarn
	levelErr
)

// env is what the model lends its components: the shared styles and
// options, read access to the state, and the two ways a component acts
// (tell the operator something; request a verb line).
type env struct {
	opts     Options
	st       *styles
	now      func() time.Time
	snap     func() *protocol.Snapshot
	via      func() string
	selected func() (protocol.Node, bool)
	tell     func(level, string)
	request  func(line string) tea.Cmd
}

// focusable is a pane the Tab key cycles through.
type focusable interface {
	help.KeyMap
	SetSize(w, h int)
	Update(tea.Msg) tea.Cmd
	View() string
	Focus()
	Blur()
	helpGroups() []helpGroup
}

// Model is the console screen. Use it through a pointer; New builds one.
type Model struct {
	opts  Options
	st    *styles
	table *verb.Table
	env   *env

	snap      *protocol.Snapshot
	baseline  map[string][]string // each cluster's risks in the first snapshot
	via       string
	connected bool
	connKnown bool

	width, height int
	sideBySide    bool

	nodes   *nodePane
	details *detailPane
	events  *eventPane
	panes   []focusable
	focus   int

	keys     globalKeys
	shortHlp help.Model

	showHelp bool
	dialog   *dialog
	input    *prompt

	status   string
	statusLv level

	ctx       context.Context
	cancel    context.CancelFunc
	running   map[int]protocol.Action
	nextID    int
	quitArmed bool
}

// New builds the model. NO_COLOR in the environment turns colour off.
func New(opts Options) *Model {
	if os.Getenv("NO_COLOR") != "" {
		opts.NoColor = true
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Model{
		opts:    opts,
		st:      newStyles(opts.NoColor),
		table:   verb.New(verb.Options{Demo: opts.Demo, ReadOnly: opts.ReadOnly}),
		keys:    newGlobalKeys(),
		running: map[int]protocol.Action{},
		width:   80,
		height:  24,
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.env = &env{
		opts:     opts,
		st:       m.st,
		now:      opts.Now,
		snap:     func() *protocol.Snapshot { return m.snap },
		via:      m.agent,
		selected: func() (protocol.Node, bool) { return m.nodes.Selected() },
		tell:     m.tell,
		request:  m.request,
	}
	m.nodes = newNodePane(m.env)
	m.details = newDetailPane(m.env)
	m.events = newEventPane(m.env)
	m.panes = []focusable{m.nodes, m.details, m.events}
	m.nodes.Focus()
	m.shortHlp = help.New()
	m.shortHlp.Styles.ShortKey = m.st.key
	m.shortHlp.Styles.ShortDesc = m.st.dim
	m.shortHlp.Styles.ShortSeparator = m.st.dim
	m.shortHlp.Styles.Ellipsis = m.st.dim
	if opts.NoColor {
		m.shortHlp.Styles.ShortKey = m.st.bold
	}
	m.refresh()
	m.layout()
	return m
}

// Init starts the one-second tick that keeps countdowns running.
func (m *Model) Init() tea.Cmd { return tick() }

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Selected returns the name of the node under the cursor, or "".
func (m *Model) Selected() string {
	n, _ := m.nodes.Selected()
	return n.Name
}

// agent names the agent answering: the host's word when it gave one,
// else the snapshot's.
func (m *Model) agent() string {
	if m.via != "" {
		return m.via
	}
	if m.snap != nil {
		return m.snap.From
	}
	return ""
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case SnapshotMsg:
		if msg.Snapshot != nil {
			s := clean(msg.Snapshot)
			m.setSnapshot(s)
			m.events.add(s.Events...)
		}
	case ChangeMsg:
		if msg.Snapshot != nil {
			s := clean(msg.Snapshot)
			m.setSnapshot(s)
			m.events.add(s.Events...)
		}
		m.events.add(cleanEvents(msg.Events)...)
	case historyMsg:
		m.gotHistory(msg)
	case ConnMsg:
		msg.Via, msg.Note = cleanString(msg.Via), cleanString(msg.Note)
		m.conn(msg)
	case tickMsg:
		cmd = tick()
	case actionProgressMsg:
		cmd = m.progress(msg)
	case actionDoneMsg:
		m.done(msg)
	case tea.KeyPressMsg:
		cmd = m.key(msg)
	case tea.PasteMsg:
		switch {
		case m.dialog != nil:
			_, cmd = m.dialog.Update(msg)
		case m.input != nil:
			cmd = m.input.Update(msg)
		}
	}
	m.refresh()
	m.layout()
	return m, cmd
}

func (m *Model) setSnapshot(s *protocol.Snapshot) {
	m.snap = s
	m.nodes.setSnapshot(s)
	if m.baseline == nil {
		// The risks the deployment had when the console first saw it:
		// known ones, listed after those that appear later.
		m.baseline = map[string][]string{}
		for _, site := range s.Sites {
			for _, c := range site.Clusters {
				m.baseline[clusterName(site.Name, c.Name)] = slices.Clone(c.Quorum.Risks)
			}
		}
	}
}

func (m *Model) conn(c ConnMsg) {
	changed := !m.connKnown || c.Connected != m.connected || c.Via != m.via
	m.via, m.connected, m.connKnown = c.Via, c.Connected, true
	note := c.Note
	if note == "" && changed {
		if c.Connected {
			note = "connected through " + c.Via
		} else {
			note = "lost the connection to " + c.Via
		}
	}
	if note == "" {
		return
	}
	sev := protocol.SevInfo
	lv := levelInfo
	if !c.Connected {
		sev, lv = protocol.SevWarning, levelWarn
	}
	m.tell(lv, note)
	m.local(sev, c.Via, "console", note)
}

// local adds a console event to the log.
func (m *Model) local(sev protocol.Severity, node, kind, msg string) {
	m.events.add(protocol.Event{Time: m.opts.Now(), Node: node, Kind: kind, Severity: sev, Message: msg})
}

// tell puts a message on the status line.
func (m *Model) tell(lv level, s string) {
	m.status, m.statusLv = s, lv
}

// refresh brings every binding's enabled state and reason up to date.
func (m *Model) refresh() {
	m.nodes.refresh()
	ro := m.opts.ReadOnly
	var geo *protocol.Geo
	if m.snap != nil {
		geo = m.snap.Geo
	}
	why, to := "", ""
	if geo != nil && geo.Pending != nil {
		to = " to " + geo.Pending.To
	}
	switch {
	case ro:
		why = whyReadOnly
	case geo == nil:
		why = "no geo manager in this deployment"
	case geo.Pending == nil || (geo.Pending.State != "" && geo.Pending.State != "pending"):
		why, to = "no geo failover is pending", ""
	}
	m.keys.geoConfirm.set("confirm the geo failover"+to+" now", why)
	m.keys.geoAbort.set("abort the geo failover"+to, why)
}

func (m *Model) focused() focusable { return m.panes[m.focus] }

func (m *Model) setFocus(i int) {
	m.focused().Blur()
	m.focus = (i + len(m.panes)) % len(m.panes)
	m.focused().Focus()
}

// key routes a key press: to the open dialog, prompt or help first, then
// to the global keys, then to the focused pane.
func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return m.quit()
	}
	if m.dialog != nil {
		res, cmd := m.dialog.Update(k)
		switch res {
		case dialogCancelled:
			m.tell(levelInfo, "cancelled: "+m.dialog.cmd.Action.String())
			m.dialog = nil
		case dialogConfirmed:
			c := m.dialog.cmd
			m.dialog = nil
			return m.run(c)
		}
		return cmd
	}
	if m.input != nil {
		return m.inputKey(k)
	}
	if m.showHelp {
		if pressed(k, m.keys.back.Binding) || pressed(k, m.keys.help.Binding) || pressed(k, m.keys.quit.Binding) {
			m.showHelp = false
		}
		return nil
	}
	g := &m.keys
	switch {
	case pressed(k, g.quit.Binding):
		if len(m.running) > 0 && !m.quitArmed {
			m.quitArmed = true
			m.tell(levelWarn, fmt.Sprintf("%s still running (the agent finishes it either way): q again to quit", m.runningNames()))
			return nil
		}
		return m.quit()
	case pressed(k, g.help.Binding):
		m.showHelp = true
	case pressed(k, g.filter.Binding):
		// The filter applies to the pane in focus: nodes, or the events.
		f := m.nodes.filter
		if m.focused() == m.events {
			f = m.events.filter
		}
		m.input = newPrompt(m.st, promptFilter, f)
		return m.input.focus()
	case pressed(k, g.command.Binding):
		m.input = newPrompt(m.st, promptCommand, "")
		m.input.ti.SetSuggestions(m.suggestions())
		return m.input.focus()
	case pressed(k, g.next.Binding):
		m.setFocus(m.focus + 1)
	case pressed(k, g.prev.Binding):
		m.setFocus(m.focus - 1)
	case pressed(k, g.back.Binding):
		switch {
		case m.focused() == m.events && m.events.filter != "":
			m.events.setFilter("")
			m.tell(levelInfo, "event filter cleared")
		case m.nodes.filter != "":
			m.nodes.setFilter("")
			m.tell(levelInfo, "filter cleared")
		default:
			m.status = ""
		}
	case pressed(k, g.geoConfirm.Binding), pressed(k, g.geoAbort.Binding):
		b := &g.geoConfirm
		if pressed(k, g.geoAbort.Binding) {
			b = &g.geoAbort
		}
		if b.why != "" {
			m.tell(levelWarn, b.Help().Desc+": not now — "+b.why)
			return nil
		}
		if b == &g.geoConfirm {
			return m.request("geo confirm " + m.snap.Geo.Pending.To)
		}
		return m.request("geo abort " + m.snap.Geo.Pending.To)
	default:
		m.quitArmed = false
		return m.focused().Update(k)
	}
	return nil
}

func (m *Model) quit() tea.Cmd {
	m.cancel()
	return tea.Quit
}

func (m *Model) runningNames() string {
	var names []string
	for _, a := range m.running {
		names = append(names, a.String())
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// request runs a verb line the way the command line would: parsed by the
// verb table, checked against the snapshot, and confirmed as the verb's
// safety class demands.
func (m *Model) request(line string) tea.Cmd {
	c, err := m.table.Parse(line)
	if err != nil {
		m.tellErr(err)
		return nil
	}
	return m.dispatch(c)
}

// dispatch handles a parsed command.
func (m *Model) dispatch(c verb.Command) tea.Cmd {
	switch c.Verb.Name {
	case "help":
		if len(c.Action.Args) == 0 {
			m.showHelp = true
			return nil
		}
		v, ok := m.table.Lookup(c.Action.Args[0])
		if !ok {
			// A family word ("help geo"): list the family's forms.
			var forms []string
			for _, x := range m.table.Verbs() {
				if strings.HasPrefix(x.Name, c.Action.Args[0]+" ") {
					forms = append(forms, x.Synopsis())
				}
			}
			m.tell(levelInfo, "usage: "+strings.Join(forms, " | "))
			return nil
		}
		m.tell(levelInfo, m.table.Describe(v))
		return nil
	case "status":
		m.statusOf(c.Action.Args)
		return nil
	case "history":
		return m.history(c.Values)
	}
	if err := m.check(c); err != nil {
		m.tellErr(err)
		return nil
	}
	if c.Dangerous() {
		m.dialog = newDialog(m.st, c, m.facts(c))
		return m.dialog.focus()
	}
	return m.run(c)
}

// facts says what the dialog's target is doing now, so the operator
// confirms against the state rather than a name: "pbx-a1 is online and
// runs pbx".
func (m *Model) facts(c verb.Command) string {
	if c.Verb.Name == "geo abort" && m.snap != nil && m.snap.Geo != nil && m.snap.Geo.Pending != nil {
		p := m.snap.Geo.Pending
		return fmt.Sprintf("Service stays at %s; the failover to %s is dropped.", p.From, p.To)
	}
	if m.snap == nil || len(c.Action.Args) == 0 || len(c.Verb.Args) == 0 {
		return ""
	}
	target := c.Action.Args[0]
	switch c.Verb.Args[0].Kind {
	case verb.KindNode, verb.KindDBNode:
		n, ok := m.snap.FindNode(target)
		if !ok {
			return ""
		}
		s := fmt.Sprintf("%s is %s (%s)", n.Name, n.State, n.Member)
		var runs []string
		for _, site := range m.snap.Sites {
			for _, cl := range site.Clusters {
				for _, g := range cl.Groups {
					if g.Active == n.Name {
						runs = append(runs, g.Name)
					}
				}
				for _, d := range cl.Databases {
					if d.Node == n.Name {
						runs = append(runs, "database "+d.Role)
					}
				}
			}
		}
		if len(runs) > 0 {
			s += " and runs " + strings.Join(runs, ", ")
		}
		return s + "."
	case verb.KindSite:
		if g := m.snap.Geo; g != nil {
			for _, gs := range g.Sites {
				if gs.Name == target {
					s := fmt.Sprintf("%s is geo %s, service %s", gs.Name, gs.GeoRole, gs.ServiceRole)
					if !gs.Reachable {
						s += ", UNREACHABLE"
					}
					return s + "."
				}
			}
		}
	}
	return ""
}

// check refuses a command the snapshot shows cannot apply (an unknown
// node, a database verb for a node without one) before it travels to an
// agent or a dialog asks to confirm it.
func (m *Model) check(c verb.Command) error { return c.Check(m.snap) }

func (m *Model) tellErr(err error) {
	pe := protocol.AsError(err)
	s := pe.Message
	if pe.Hint != "" {
		s += " — " + pe.Hint
	}
	m.tell(levelErr, s)
}

// statusOf answers `:status [NODE]` from the snapshot on screen: with a
// node it also moves the cursor there.
func (m *Model) statusOf(args []string) {
	if m.snap == nil {
		m.tell(levelWarn, "no snapshot yet: waiting for the agent")
		return
	}
	if len(args) == 0 {
		m.tell(levelInfo, m.summary())
		return
	}
	n, ok := m.snap.FindNode(args[0])
	if !ok {
		m.tellErr(m.check(verb.Command{Verb: &verb.Verb{Args: []verb.Arg{{Kind: verb.KindNode}}}, Action: protocol.Action{Args: args}}))
		return
	}
	if !m.nodes.selectName(n.Name) {
		m.nodes.setFilter("")
		m.nodes.selectName(n.Name)
	}
	s := fmt.Sprintf("%s: %s · %s", n.Name, n.State, n.Member)
	if !n.Since.IsZero() {
		s += " since " + clock(n.Since, m.opts.Now())
	}
	if len(n.Links) > 0 {
		up := 0
		for _, l := range n.Links {
			if l.Up {
				up++
			}
		}
		s += fmt.Sprintf(" · links %d/%d up", up, len(n.Links))
	}
	m.tell(levelInfo, s)
}

// run sends a command through the backend as a tea.Cmd. Progress arrives
// on a channel the model keeps reading until the action ends.
func (m *Model) run(c verb.Command) tea.Cmd {
	a := c.Action
	if m.opts.Backend == nil {
		m.tell(levelErr, a.String()+": no agent connection to send it to")
		return nil
	}
	m.nextID++
	id := m.nextID
	m.running[id] = a
	m.tell(levelInfo, a.String()+": sent")
	m.local(protocol.SevInfo, "", "console", "sent: "+a.String())

	ch := make(chan protocol.Progress, 16)
	var mu sync.Mutex
	closed := false
	report := func(p protocol.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return // a backend that reports after Do returned is ignored, not a crash
		}
		select {
		case ch <- p:
		default: // the screen is behind; the next report will do
		}
	}
	backend, ctx := m.opts.Backend, m.ctx
	do := func() tea.Msg {
		res, err := backend.Do(ctx, a, report)
		mu.Lock()
		closed = true
		close(ch)
		mu.Unlock()
		return actionDoneMsg{id: id, a: a, res: res, err: err}
	}
	return tea.Batch(do, waitProgress(id, ch))
}

func waitProgress(id int, ch <-chan protocol.Progress) tea.Cmd {
	return func() tea.Msg {
		p, ok := <-ch
		if !ok {
			return nil
		}
		return actionProgressMsg{id: id, p: p, ch: ch}
	}
}

func (m *Model) progress(msg actionProgressMsg) tea.Cmd {
	a, ok := m.running[msg.id]
	if !ok {
		return nil
	}
	s := a.String() + ": " + msg.p.Step
	if msg.p.Message != "" {
		s += " — " + msg.p.Message
	}
	if msg.p.Percent >= 0 {
		s += fmt.Sprintf(" (%.0f%%)", msg.p.Percent)
	}
	m.tell(levelInfo, s)
	return waitProgress(msg.id, msg.ch)
}

func (m *Model) done(msg actionDoneMsg) {
	delete(m.running, msg.id)
	if len(m.running) == 0 {
		m.quitArmed = false
	}
	name := msg.a.String()
	if msg.a.DryRun {
		name += " --dry-run"
	}
	if msg.err == nil && msg.res.OK {
		s := name + ": done"
		if msg.res.Message != "" {
			s += " — " + msg.res.Message
		}
		m.tell(levelOK, s)
		m.local(protocol.SevInfo, "", "console", s)
		return
	}
	var pe *protocol.Error
	switch {
	case msg.err != nil:
		pe = protocol.AsError(msg.err)
	case msg.res.Error != nil:
		pe = msg.res.Error
	default:
		pe = &protocol.Error{Code: protocol.CodeFailed, Message: msg.res.Message}
	}
	if pe.Message == "" {
		c := *pe
		c.Message = "the agent gave no reason"
		pe = &c
	}
	word := "FAILED"
	switch pe.Code {
	case protocol.CodeRefused, protocol.CodeUnauthorized, protocol.CodeBusy:
		word = "REFUSED"
	case protocol.CodeUnreachable:
		word = "UNREACHABLE"
	}
	s := name + ": " + word + " — " + pe.Message
	if pe.Hint != "" {
		s += " (" + pe.Hint + ")"
	}
	m.tell(levelErr, s)
	m.local(protocol.SevWarning, "", "console", s)
}

// suggestions completes the command line: every verb, and every verb
// that takes a node or site followed by each name.
func (m *Model) suggestions() []string {
	var out []string
	for _, v := range m.table.Verbs() {
		out = append(out, v.Name)
		if m.snap == nil || len(v.Args) == 0 {
			continue
		}
		switch v.Args[0].Kind {
		case verb.KindNode:
			for _, n := range m.snap.Nodes() {
				out = append(out, v.Name+" "+n.Name)
			}
		case verb.KindDBNode:
			for _, c := range m.snap.Clusters() {
				for _, d := range c.Databases {
					out = append(out, v.Name+" "+d.Node)
				}
			}
		case verb.KindSite:
			for _, s := range m.snap.Sites {
				out = append(out, v.Name+" "+s.Name)
			}
		case verb.KindCluster:
			for _, s := range m.snap.Sites {
				for _, c := range s.Clusters {
					out = append(out, v.Name+" "+c.Name)
				}
			}
		}
	}
	return out
}

// inputKey handles a key while the filter or command prompt is open.
func (m *Model) inputKey(k tea.KeyPressMsg) tea.Cmd {
	p := m.input
	switch k.String() {
	case "esc":
		if p.kind == promptFilter {
			m.setFilter("")
		}
		m.input = nil
		return nil
	case "enter":
		val := strings.TrimSpace(p.ti.Value())
		if p.kind == promptFilter {
			m.input = nil
			m.setFilter(val)
			if val != "" && m.focused() == m.events {
				m.tell(levelInfo, fmt.Sprintf("events matching %q: %d of %d (esc clears)", val, len(m.events.shown), len(m.events.events)))
			} else if val != "" {
				m.tell(levelInfo, fmt.Sprintf("filter %q: %d of %d nodes (esc clears)", val, len(m.nodes.nodeRows), m.nodes.total))
			}
			return nil
		}
		if val == "" {
			m.input = nil
			return nil
		}
		c, err := m.table.Parse(val)
		if err == nil {
			err = m.check(c)
		}
		if err != nil {
			// Keep the line so the operator can fix it.
			m.tellErr(err)
			return nil
		}
		m.input = nil
		return m.dispatch(c)
	}
	cmd := p.Update(k)
	if p.kind == promptFilter {
		m.setFilter(p.ti.Value())
	}
	return cmd
}

// setFilter filters the pane in focus: the events when they are, else
// the nodes.
func (m *Model) setFilter(f string) {
	if m.focused() == m.events {
		m.events.setFilter(f)
		return
	}
	m.nodes.setFilter(f)
}

// history asks an agent for the deployment's history (the verb's --since,
// --node, --limit; the last hour by default) and merges it into the event
// log, which takes the focus.
func (m *Model) history(values map[string]string) tea.Cmd {
	h, ok := m.opts.Backend.(Historian)
	if !ok {
		m.tell(levelWarn, "this console cannot read history: run hatui --exec 'history --since 1h' on a node")
		return nil
	}
	if values["--since"] == "" {
		values = maps.Clone(values)
		values["--since"] = "1h" // the console's log already holds what is newer
	}
	req, err := verb.HistoryRequest(values, m.opts.Now())
	if err != nil {
		m.tellErr(err)
		return nil
	}
	m.tell(levelInfo, "reading history since "+req.Since.Local().Format("15:04:05")+"…")
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := h.History(ctx, req)
		return historyMsg{req: req, h: res, err: err}
	}
}

// gotHistory merges a history answer into the event log.
func (m *Model) gotHistory(msg historyMsg) {
	if msg.err != nil {
		m.tellErr(msg.err)
		return
	}
	m.events.add(cleanEvents(msg.h.Events)...)
	m.setFocus(slices.Index(m.panes, focusable(m.events)))
	note := fmt.Sprintf("history: %d entries since %s in the event log (/ filters, end jumps to now)", len(msg.h.Events), msg.req.Since.Local().Format("15:04:05"))
	if msg.h.Truncated {
		note += "; older ones left out: narrow with --since or --node"
	}
	m.tell(levelInfo, note)
}

// summary is the one-line state of the deployment for `:status`.
func (m *Model) summary() string {
	c := countNodes(m.snap)
	return fmt.Sprintf("%s: %s configured, %d online, %d standby, %d maintenance, %d OFFLINE, %d UNCLEAN",
		m.snap.Deployment, plural(c.total, "node"), c.online, c.standby, c.maint, c.offline, c.unclean)
}

type nodeCounts struct {
	total, up, online, standby, maint, offline, unclean int
	// unseen are the nodes outside the answering agent's island: not
	// known to be down, only out of its sight.
	unseen int
}

func countNodes(s *protocol.Snapshot) nodeCounts {
	var c nodeCounts
	if s == nil {
		return c
	}
	for _, site := range s.Sites {
		far := outOfSight(s, site.Name)
		for _, cl := range site.Clusters {
			for _, n := range cl.Nodes {
				c.total++
				if n.Member == protocol.MemberAlive {
					c.up++
				}
				if far && n.Member != protocol.MemberAlive {
					c.unseen++
					continue
				}
				switch n.State {
				case protocol.StateOnline:
					c.online++
				case protocol.StateStandby:
					c.standby++
				case protocol.StateMaintenance:
					c.maint++
				case protocol.StateOffline:
					c.offline++
				case protocol.StateUnclean:
					c.unclean++
				}
			}
		}
	}
	return c
}

// View renders the screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "hatui"
	if m.snap != nil && m.snap.Deployment != "" {
		v.WindowTitle = "hatui · " + m.snap.Deployment
	}
	return v
}

// Minimum usable screen; below it the model says so instead of drawing
// a misleading fragment.
const minWidth, minHeight = 40, 12

func (m *Model) render() string {
	w, h := m.width, m.height
	if w < minWidth || h < minHeight {
		msg := fmt.Sprintf("terminal %d×%d is too small: hatui needs %d×%d · q quits", w, h, minWidth, minHeight)
		return strings.Join(block(wrap(msg, max(w, 1)), max(w, 1), max(h, 1)), "\n")
	}
	header := m.header(w, h)
	footer := m.footer(w)
	bodyH := h - len(header) - len(footer)
	var body []string
	if m.showHelp {
		body = m.helpView(w, bodyH)
	} else {
		body = block(m.body(), w, bodyH)
	}
	lines := make([]string, 0, h)
	lines = append(lines, header...)
	lines = append(lines, body...)
	lines = append(lines, footer...)
	if m.dialog != nil {
		lines = overlay(lines, m.dialog.View(w), w)
	}
	return strings.Join(lines, "\n")
}

// footerH is the status line plus the key help line.
const footerH = 2

// layout sizes the panes for the window and the state: nodes beside
// resources when there is room, events underneath. It runs after every
// Update (the header grows with warnings, the log with events), so that
// View only draws.
func (m *Model) layout() {
	w, h := m.width, m.height
	if w < minWidth || h < minHeight {
		return
	}
	bodyH := h - len(m.header(w, h)) - footerH
	// The log takes what its events need, up to 30%: a quiet log leaves
	// the room to resources. On a short screen it keeps one line.
	minEv := 3
	if bodyH < 14 {
		minEv = 2
	}
	evH := max(minEv, min(len(m.events.events)+1, 12, bodyH*3/10))
	top := bodyH - evH
	m.sideBySide = w >= 70
	switch {
	case m.sideBySide:
		left := max(34, min(64, w*42/100))
		m.nodes.SetSize(left, top)
		m.details.SetSize(w-left-1, top)
	case top < 10:
		// Too short to stack both: the node list wins, resources are a
		// resize (or a wider window) away.
		m.nodes.SetSize(w, top)
		m.details.SetSize(w, 0)
	default:
		nh := top * 60 / 100
		m.nodes.SetSize(w, nh)
		m.details.SetSize(w, top-nh)
	}
	m.events.SetSize(w, evH)
}

// body draws the panes as layout sized them.
func (m *Model) body() []string {
	var out []string
	if m.sideBySide {
		l := strings.Split(m.nodes.View(), "\n")
		r := strings.Split(m.details.View(), "\n")
		sep := m.st.dim.Render("│")
		for i := range min(len(l), len(r)) {
			out = append(out, l[i]+sep+r[i])
		}
	} else {
		out = append(out, strings.Split(m.nodes.View(), "\n")...)
		if m.details.h > 0 {
			out = append(out, strings.Split(m.details.View(), "\n")...)
		}
	}
	return append(out, strings.Split(m.events.View(), "\n")...)
}

// footer is the status line and the key help of whatever has the keys.
func (m *Model) footer(w int) []string {
	var status string
	if m.input != nil {
		status = m.input.View(w)
	} else {
		status = m.statusLine()
	}
	var hl string
	m.shortHlp.SetWidth(w)
	switch {
	case m.dialog != nil:
		hl = m.shortHlp.ShortHelpView(m.dialog.ShortHelp())
	case m.input != nil:
		hl = m.shortHlp.ShortHelpView(m.input.ShortHelp())
	case m.showHelp:
		hl = m.shortHlp.ShortHelpView(bindings(&m.keys.back))
	default:
		// Help and quit first: they must survive truncation on 80 columns.
		g := &m.keys
		b := briefs(&g.help, &g.quit)
		if g.geoConfirm.why == "" {
			b = append(b, briefs(&g.geoConfirm, &g.geoAbort)...)
		}
		b = append(b, m.focused().ShortHelp()...)
		b = append(b, briefs(&g.filter, &g.command, &g.next)...)
		hl = m.shortHlp.ShortHelpView(b)
	}
	if m.opts.ReadOnly && m.input == nil && m.dialog == nil {
		hl = m.st.warn.Render("READ-ONLY") + " " + hl
	}
	return []string{fit(status, w), fit(hl, w)}
}

func (m *Model) statusLine() string {
	if m.status == "" {
		return ""
	}
	st := m.st
	switch m.statusLv {
	case levelOK:
		return st.ok.Render(m.status)
	case levelWarn:
		return st.warn.Render(m.status)
	case levelErr:
		return st.bad.Render(m.status)
	}
	return m.status
}

// overlay draws box centred over lines.
func overlay(lines []string, box string, w int) []string {
	bl := strings.Split(box, "\n")
	bw := 0
	for _, l := range bl {
		bw = max(bw, ansi.StringWidth(l))
	}
	x := max(0, (w-bw)/2)
	y := max(0, (len(lines)-len(bl))/2)
	for i, l := range bl {
		row := y + i
		if row >= len(lines) {
			break
		}
		bg := lines[row]
		lines[row] = ansi.Cut(bg, 0, x) + l + ansi.Cut(bg, x+bw, w)
	}
	return lines
}
