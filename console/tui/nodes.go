package tui

import (
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/hatui/hatui/protocol"
)

// nodeRow is one line of the node list: a cluster heading or a node.
type nodeRow struct {
	cluster *protocol.Cluster // set on heading rows
	site    *protocol.Site    // set on heading rows
	node    *protocol.Node    // set on node rows
}

// nodePane is the crm_mon-style node list, grouped by site and cluster.
// The cursor belongs to a node name, not a row number: when a new
// snapshot re-sorts the rows or nodes come and go, the operator's finger
// stays on the machine it was on.
type nodePane struct {
	env   *env
	nav   navKeys
	keys  nodeKeys
	w, h  int
	focus bool

	snap     *protocol.Snapshot
	filter   string
	rows     []nodeRow
	nodeRows []int // indexes into rows of the node rows, in order
	cur      int   // index into nodeRows
	selected string
	offset   int // first row shown
	total    int // nodes before filtering
}

type nodeKeys struct {
	standby, online, maintenance act
	switchover, cleanup, fence   act
	kill, revive, cut, heal      act
}

func newNodePane(e *env) *nodePane {
	p := &nodePane{env: e, nav: newNavKeys("last")}
	p.keys = nodeKeys{
		standby:     newAct([]string{"s"}, "s", "standby"),
		online:      newAct([]string{"o"}, "o", "online"),
		maintenance: newAct([]string{"m"}, "m", "maintenance"),
		switchover:  newAct([]string{"w"}, "w", "switch over here"),
		cleanup:     newAct([]string{"u"}, "u", "clean up failures"),
		fence:       newAct([]string{"F"}, "F", "fence"),
		kill:        newAct([]string{"K"}, "K", "demo: kill node"),
		revive:      newAct([]string{"R"}, "R", "demo: revive node"),
		cut:         newAct([]string{"X"}, "X", "demo: cut site off"),
		heal:        newAct([]string{"H"}, "H", "demo: heal site"),
	}
	return p
}

func (p *nodePane) title() string {
	t := "Nodes"
	if p.filter != "" {
		t = fmt.Sprintf("Nodes · %d of %d · filter %q", len(p.nodeRows), p.total, p.filter)
	}
	return t
}

// SetSize gives the pane its area, title line included.
func (p *nodePane) SetSize(w, h int) {
	p.w, p.h = w, h
	p.scroll()
}

func (p *nodePane) Focus() { p.focus = true }
func (p *nodePane) Blur()  { p.focus = false }

// Selected returns the node under the cursor.
func (p *nodePane) Selected() (protocol.Node, bool) {
	if p.cur < 0 || p.cur >= len(p.nodeRows) {
		return protocol.Node{}, false
	}
	return *p.rows[p.nodeRows[p.cur]].node, true
}

// setSnapshot rebuilds the rows, keeping the cursor on the selected node.
func (p *nodePane) setSnapshot(s *protocol.Snapshot) {
	p.snap = s
	p.rebuild()
}

func (p *nodePane) setFilter(f string) {
	p.filter = strings.TrimSpace(f)
	p.rebuild()
}

func (p *nodePane) rebuild() {
	// The order before, to find the selected node's nearest surviving
	// neighbour if it goes away.
	var before []string
	for _, r := range p.nodeRows {
		before = append(before, p.rows[r].node.Name)
	}
	p.rows = p.rows[:0]
	p.nodeRows = p.nodeRows[:0]
	p.total = 0
	if p.snap == nil {
		p.cur = 0
		return
	}
	f := strings.ToLower(p.filter)
	for si := range p.snap.Sites {
		site := &p.snap.Sites[si]
		for ci := range site.Clusters {
			c := &site.Clusters[ci]
			p.total += len(c.Nodes)
			whole := f == "" || strings.Contains(strings.ToLower(site.Name), f) || strings.Contains(strings.ToLower(c.Name), f)
			heading := len(p.rows)
			p.rows = append(p.rows, nodeRow{cluster: c, site: site})
			for ni := range c.Nodes {
				n := &c.Nodes[ni]
				if !whole && !strings.Contains(strings.ToLower(n.Name), f) {
					continue
				}
				p.nodeRows = append(p.nodeRows, len(p.rows))
				p.rows = append(p.rows, nodeRow{node: n})
			}
			if !whole && len(p.rows) == heading+1 {
				p.rows = p.rows[:heading] // a filtered-out cluster shows no empty heading
			}
		}
	}
	// Follow the name. When the node is gone (or filtered out), move to
	// its nearest neighbour in the old order that is still listed, the
	// next one first, rather than jumping to the top.
	if !p.find(p.selected) {
		old := slices.Index(before, p.selected)
		found := false
		for d := 1; old >= 0 && !found && (old+d < len(before) || old-d >= 0); d++ {
			found = (old+d < len(before) && p.find(before[old+d])) || (old-d >= 0 && p.find(before[old-d]))
		}
		if !found {
			p.cur = max(0, min(p.cur, len(p.nodeRows)-1))
		}
		if n, ok := p.Selected(); ok {
			p.selected = n.Name
		}
	}
	p.scroll()
}

// find puts the cursor on the named node if it is listed.
func (p *nodePane) find(name string) bool {
	for i, r := range p.nodeRows {
		if p.rows[r].node.Name == name {
			p.cur = i
			return true
		}
	}
	return false
}

// selectName moves the cursor to the named node, reporting whether it is
// in the (filtered) list.
func (p *nodePane) selectName(name string) bool {
	if !p.find(name) {
		return false
	}
	p.selected = name
	p.scroll()
	return true
}

// scroll keeps the cursor row, and when possible its cluster heading, in
// view.
func (p *nodePane) scroll() {
	body := p.h - 1
	if body <= 0 || len(p.nodeRows) == 0 {
		p.offset = 0
		return
	}
	row := p.nodeRows[p.cur]
	top := row
	if row > 0 && p.rows[row-1].cluster != nil {
		top = row - 1
	}
	if top < p.offset {
		p.offset = top
	}
	if row >= p.offset+body {
		p.offset = row - body + 1
	}
	p.offset = max(0, min(p.offset, len(p.rows)-body))
}

// Update handles a key for the focused node list.
func (p *nodePane) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	if pos, moved := p.nav.move(k, p.cur, len(p.nodeRows), p.h-2); moved {
		if len(p.nodeRows) > 0 {
			p.cur = pos
			p.selected = p.rows[p.nodeRows[pos]].node.Name
			p.scroll()
		}
		return nil
	}
	n, _ := p.Selected()
	group := ""
	if c := p.clusterOf(n); c != nil && len(c.Groups) > 0 {
		group = c.Groups[0].Name
	}
	for _, a := range []struct {
		act  *act
		line string
	}{
		{&p.keys.standby, "standby " + n.Name},
		{&p.keys.switchover, "switchover " + group + " " + n.Name},
		{&p.keys.cleanup, "cleanup " + group},
		{&p.keys.fence, "fence " + n.Name},
		{&p.keys.online, "online " + n.Name},
		{&p.keys.maintenance, "maintenance " + n.Name + " " + onOff(!n.Maintenance)},
		{&p.keys.kill, "demo kill " + n.Name},
		{&p.keys.revive, "demo revive " + n.Name},
		{&p.keys.cut, "demo cut " + n.Site},
		{&p.keys.heal, "demo heal " + n.Site},
	} {
		if !pressed(k, a.act.Binding) || len(a.act.Keys()) == 0 {
			continue
		}
		if a.act.why != "" {
			p.env.tell(levelWarn, a.act.Help().Desc+": not now — "+a.act.why)
			return nil
		}
		return p.env.request(a.line)
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// refresh recomputes which actions apply to the selected node and why
// the others do not.
func (p *nodePane) refresh() {
	n, ok := p.Selected()
	ro := p.env.opts.ReadOnly
	common := func(desc string, extra string) (string, string) {
		switch {
		case ro:
			return desc, whyReadOnly
		case !ok:
			return desc, "no node selected"
		}
		return desc, extra
	}
	why := ""
	if ok && n.Standby {
		why = n.Name + " is already in standby"
	}
	p.keys.standby.set(common("standby "+n.Name, why))
	why = ""
	if ok && !n.Standby {
		why = n.Name + " is not in standby"
		if n.State == protocol.StateOnline {
			why = n.Name + " is already online"
		}
	}
	p.keys.online.set(common("online "+n.Name, why))
	p.keys.maintenance.set(common("maintenance "+onOff(!n.Maintenance)+" "+n.Name, ""))
	p.refreshGroupKeys(n, ok, common)

	if !p.env.opts.Demo {
		for _, a := range []*act{&p.keys.kill, &p.keys.revive, &p.keys.cut, &p.keys.heal} {
			a.Unbind() // demo keys do not exist outside the demo
		}
		return
	}
	why = ""
	if ok && n.Member != protocol.MemberAlive {
		why = fmt.Sprintf("%s is already down (%s)", n.Name, n.State)
	}
	p.keys.kill.set(common("demo: kill "+n.Name, why))
	why = ""
	if ok && n.Member == protocol.MemberAlive {
		why = n.Name + " is running"
	}
	p.keys.revive.set(common("demo: revive "+n.Name, why))
	p.keys.cut.set(common("demo: cut site "+n.Site+" off", ""))
	p.keys.heal.set(common("demo: heal site "+n.Site, ""))
}

// clusterOf returns the selected node's cluster in the snapshot.
func (p *nodePane) clusterOf(n protocol.Node) *protocol.Cluster {
	if p.snap == nil {
		return nil
	}
	for si := range p.snap.Sites {
		for ci := range p.snap.Sites[si].Clusters {
			c := &p.snap.Sites[si].Clusters[ci]
			for _, m := range c.Nodes {
				if m.Name == n.Name {
					return c
				}
			}
		}
	}
	return nil
}

// refreshGroupKeys says whether the local failover actions apply to the
// selected node: its cluster must run a group.
func (p *nodePane) refreshGroupKeys(n protocol.Node, ok bool, common func(string, string) (string, string)) {
	c := p.clusterOf(n)
	if !ok || c == nil || len(c.Groups) == 0 {
		why := "no service group runs in this cluster"
		p.keys.switchover.set(common("switch over here", why))
		p.keys.cleanup.set(common("clean up failures", why))
		p.keys.fence.set(common("fence "+n.Name, why))
		return
	}
	g := c.Groups[0]
	why := ""
	switch {
	case n.Role == "witness":
		why = n.Name + " is the witness: it never holds " + g.Name
	case g.Active == n.Name:
		why = n.Name + " already holds " + g.Name
	case n.Member != protocol.MemberAlive:
		why = fmt.Sprintf("%s is %s", n.Name, n.State)
	case n.Standby || n.Maintenance:
		why = fmt.Sprintf("%s is %s", n.Name, n.State)
	}
	p.keys.switchover.set(common("switch "+g.Name+" over to "+n.Name, why))
	why = "no failed actions or fail counts in " + g.Name
	for _, r := range g.Resources {
		if r.FailCount > 0 {
			why = ""
		}
	}
	if len(c.Failed) > 0 {
		why = ""
	}
	p.keys.cleanup.set(common("clean up "+g.Name+"'s failures", why))
	why = ""
	if n.Name == p.snap.From {
		why = n.Name + " is the node this console talks to"
	}
	p.keys.fence.set(common("fence (power off) "+n.Name, why))
}

func (p *nodePane) actions() []*act {
	a := []*act{&p.keys.standby, &p.keys.online, &p.keys.maintenance, &p.keys.switchover, &p.keys.cleanup, &p.keys.fence}
	if p.env.opts.Demo {
		a = append(a, &p.keys.kill, &p.keys.revive, &p.keys.cut, &p.keys.heal)
	}
	return a
}

// ShortHelp is the footer's list for this pane.
func (p *nodePane) ShortHelp() []key.Binding {
	return briefs(&p.keys.standby, &p.keys.online, &p.keys.maintenance)
}

// FullHelp lists every binding of the pane.
func (p *nodePane) FullHelp() [][]key.Binding {
	return [][]key.Binding{bindings(p.actions()...), bindings(p.nav.all()...)}
}

func (p *nodePane) helpGroups() []helpGroup {
	return []helpGroup{{"Selected node", p.actions()}, {"Move", p.nav.all()}}
}

// View renders the pane: a title line, then rows.
func (p *nodePane) View() string {
	lines := make([]string, 0, p.h)
	lines = append(lines, p.env.st.rule(p.title(), p.w, p.focus))
	body := p.h - 1
	if p.snap == nil {
		lines = append(lines, p.env.st.dim.Render("waiting for the first snapshot…"))
	} else if len(p.nodeRows) == 0 && p.filter != "" {
		lines = append(lines, p.env.st.dim.Render(fmt.Sprintf("no node matches %q (esc clears)", p.filter)))
	}
	cols := p.columns()
	var selRow = -1
	if len(p.nodeRows) > 0 {
		selRow = p.nodeRows[p.cur]
	}
	for i := p.offset; i < len(p.rows) && len(lines) < body+1; i++ {
		r := p.rows[i]
		if r.cluster != nil {
			lines = append(lines, p.heading(r))
			continue
		}
		lines = append(lines, p.nodeLine(r.node, cols, i == selRow))
	}
	return strings.Join(block(lines, p.w, p.h), "\n")
}

// columns decides the node row layout for the pane width.
type nodeCols struct {
	name  int
	state int
	role  int
	extra bool
}

func (p *nodePane) columns() nodeCols {
	c := nodeCols{name: 6, state: len("maintenance")}
	for _, r := range p.rows {
		if r.node != nil {
			c.name = max(c.name, len(r.node.Name))
		}
	}
	c.name = min(c.name, max(8, p.w/3))
	rest := p.w - 2 - c.name - 1 - c.state
	if rest >= 11 {
		c.role = 10
	}
	c.extra = rest >= 30
	return c
}

func (p *nodePane) heading(r nodeRow) string {
	st := p.env.st
	c := r.cluster
	s := st.bold.Render(r.site.Name)
	if r.site.Arbitrator {
		s += st.dim.Render(" (arbitrator)")
	}
	if c.Name != "" && c.Name != r.site.Name {
		s += st.dim.Render(" · ") + st.bold.Render(c.Name)
	}
	if outOfSight(p.snap, r.site.Name) {
		// Its quorum as this island counts it says nothing of the site.
		return s + " " + st.warn.Render("out of sight") + st.dim.Render(" (island)")
	}
	if sd := cutOff(p.snap, r.site.Name); sd != nil {
		s += " " + st.warn.Render("cut off") + st.dim.Render(" (as "+sd.Via+" sees it)")
	}
	q := c.Quorum
	if q.Voters > 0 {
		if q.HasQuorum {
			s += st.dim.Render(fmt.Sprintf(" quorum %d/%d", q.Present, q.Voters))
		} else {
			s += " " + st.bad.Render(fmt.Sprintf("NO QUORUM %d/%d", q.Present, q.Voters))
		}
	}
	if len(q.Risks) > 0 {
		s += " " + st.warn.Render("RISK")
	}
	return s
}

func (p *nodePane) nodeLine(n *protocol.Node, c nodeCols, sel bool) string {
	st := p.env.st
	mark := "  "
	if sel {
		mark = "> "
	}
	name := fit(n.Name, c.name)
	if sel {
		name = st.cursor.Render(name)
	} else if n.Name == p.env.via() {
		name = st.bold.Render(name)
	}
	state := st.nodeState(n.State)
	if p.unseen(n) {
		state = st.warn.Render("unseen")
	}
	line := mark + name + " " + fit(state, c.state)
	if c.role > 0 {
		line += " " + st.dim.Render(fit(n.Role, c.role))
	}
	if c.extra {
		line += " " + p.extra(n)
	}
	return line
}

// unseen reports whether a node is down only in the eyes of an island:
// it is in a site the answering agent cannot reach.
func (p *nodePane) unseen(n *protocol.Node) bool {
	return n.Member != protocol.MemberAlive && outOfSight(p.snap, n.Site)
}

// extra is the tail of a wide node row: what is unusual about the node.
func (p *nodePane) extra(n *protocol.Node) string {
	st := p.env.st
	var parts []string
	if n.Name == p.env.via() {
		parts = append(parts, st.info.Render("◂ via"))
	}
	switch {
	case p.unseen(n):
		s := "out of sight"
		if !n.Since.IsZero() {
			s += " " + ago(n.Since, p.env.now())
		}
		parts = append(parts, st.warn.Render(s))
	case n.Member != protocol.MemberAlive:
		s := string(n.Member)
		if !n.Since.IsZero() {
			s += " " + ago(n.Since, p.env.now())
		}
		parts = append(parts, st.bad.Render(s))
	}
	if len(n.Links) > 0 {
		up := 0
		for _, l := range n.Links {
			if l.Up {
				up++
			}
		}
		s := fmt.Sprintf("links %d/%d", up, len(n.Links))
		switch {
		case up == len(n.Links):
			parts = append(parts, st.dim.Render(s))
		case up == 0:
			parts = append(parts, st.bad.Render(s+" DOWN"))
		default:
			parts = append(parts, st.warn.Render(s))
		}
	}
	return strings.Join(parts, " ")
}
