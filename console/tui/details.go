package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/hatui/hatui/protocol"
)

// detailPane shows what sits on the nodes: the geo ticket and its dead
// man's timer, the selected node's links, and per cluster the service
// groups, failed actions, databases and switches. Sections that the
// snapshot does not carry take no room.
type detailPane struct {
	env    *env
	nav    navKeys
	w, h   int
	focus  bool
	offset int
	bar    progress.Model

	// The content is rebuilt only when its inputs change. The cluster
	// sections (most of it, in a big deployment) change with the snapshot;
	// the geo countdown and the selected node change with the clock and
	// the cursor, at most once a second.
	cache     []string
	cacheKey  detailKey
	static    []string
	staticKey detailKey
}

type detailKey struct {
	snap *protocol.Snapshot
	node string
	w    int
	sec  int64
}

func newDetailPane(e *env) *detailPane {
	p := &detailPane{env: e, nav: newNavKeys("last")}
	p.bar = progress.New(progress.WithoutPercentage(),
		progress.WithFillCharacters(progress.DefaultFullCharFullBlock, progress.DefaultEmptyCharBlock))
	if e.st.noColor {
		p.bar.FullColor, p.bar.EmptyColor = lipgloss.NoColor{}, lipgloss.NoColor{}
	}
	return p
}

// SetSize gives the pane its area, title line included.
func (p *detailPane) SetSize(w, h int) { p.w, p.h = w, h }

func (p *detailPane) Focus() { p.focus = true }
func (p *detailPane) Blur()  { p.focus = false }

// Update scrolls the pane.
func (p *detailPane) Update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	lines := p.content()
	maxOff := max(0, len(lines)-(p.h-1))
	if pos, moved := p.nav.move(k, p.offset, maxOff+1, p.h-2); moved {
		p.offset = pos
	}
	return nil
}

// ShortHelp is the footer's list for this pane.
func (p *detailPane) ShortHelp() []key.Binding { return bindings(&p.nav.up, &p.nav.down) }

// FullHelp lists every binding of the pane.
func (p *detailPane) FullHelp() [][]key.Binding { return [][]key.Binding{bindings(p.nav.all()...)} }

func (p *detailPane) helpGroups() []helpGroup { return []helpGroup{{"Scroll", p.nav.all()}} }

// View renders the pane: a title line, then the visible part of the content.
func (p *detailPane) View() string {
	lines := p.content()
	body := p.h - 1
	p.offset = max(0, min(p.offset, len(lines)-body))
	title := "Resources"
	if len(lines) > body && body > 0 {
		title += fmt.Sprintf(" · %d–%d of %d", p.offset+1, min(p.offset+body, len(lines)), len(lines))
	}
	out := make([]string, 0, p.h)
	out = append(out, p.env.st.rule(title, p.w, p.focus))
	end := min(len(lines), p.offset+max(body, 0))
	out = append(out, lines[p.offset:end]...)
	return strings.Join(block(out, p.w, p.h), "\n")
}

func (p *detailPane) content() []string {
	snap := p.env.snap()
	now := p.env.now()
	sel, _ := p.env.selected()
	k := detailKey{snap: snap, node: sel.Name, w: p.w, sec: now.Unix()}
	if p.cache != nil && k == p.cacheKey {
		return p.cache
	}
	if sk := (detailKey{snap: snap, w: p.w}); p.static == nil || sk != p.staticKey {
		p.static, p.staticKey = p.clusters(snap, now), sk
	}
	p.cache, p.cacheKey = p.build(snap, sel, now), k
	return p.cache
}

func (p *detailPane) build(snap *protocol.Snapshot, sel protocol.Node, now time.Time) []string {
	if snap == nil {
		return []string{p.env.st.dim.Render("no snapshot yet")}
	}
	var out []string
	if snap.Geo != nil {
		out = append(out, p.geo(snap.Geo, now)...)
	}
	if sel.Name != "" {
		out = append(out, p.node(sel, now)...)
	}
	return append(out, p.static...)
}

// clusters renders every cluster's groups, failed actions, databases and
// switches.
func (p *detailPane) clusters(snap *protocol.Snapshot, now time.Time) []string {
	st := p.env.st
	if snap == nil {
		return []string{}
	}
	out := []string{}
	shown := false
	for _, site := range snap.Sites {
		for i := range site.Clusters {
			c := &site.Clusters[i]
			if len(c.Groups)+len(c.Failed)+len(c.Databases)+len(c.Switches) == 0 {
				continue
			}
			shown = true
			out = append(out, p.cluster(site.Name, c, now)...)
		}
	}
	if !shown {
		out = append(out, st.dim.Render("no groups, databases or switches reported"))
	}
	return out
}

func (p *detailPane) section(title, rest string) string {
	s := p.env.st.header.Render(title)
	if rest != "" {
		s += " " + rest
	}
	return s
}

func (p *detailPane) geo(g *protocol.Geo, now time.Time) []string {
	st := p.env.st
	holder := g.Ticket.Holder
	if holder == "" {
		holder = st.bad.Render("NOBODY")
	}
	head := fmt.Sprintf("ticket %s → %s · term %d · mode %s", g.Ticket.Name, holder, g.Ticket.Term, g.Mode)
	if g.Leader != "" {
		head += " · leader " + g.Leader
	}
	out := []string{p.section("GEO", head)}
	if f := g.Pending; f != nil {
		left := f.Expires.Sub(now)
		line := "  " + st.loud.Render("PENDING FAILOVER") + fmt.Sprintf(" %s → %s", f.From, f.To)
		switch {
		case f.State != "" && f.State != "pending":
			line += " · " + f.State
		case left <= 0:
			line += " · dead man's switch " + st.loud.Render("EXPIRED") + ": failing over"
		default:
			line += " · " + st.loud.Render(countdown(left)) + " left · at " + clock(f.Expires, now)
		}
		out = append(out, line)
	}
	if e := g.Ticket.LeaseExpiry; !e.IsZero() {
		// The holder renews its lease through a majority; a lease that
		// ran out means the holder lost the others.
		lease := "  lease until " + clock(e, now)
		if left := e.Sub(now); left > 0 {
			lease += fmt.Sprintf(" (%s)", countdown(left))
		} else {
			lease += " " + st.bad.Render("EXPIRED")
			if is := p.env.snap().Island; is != nil {
				lease += st.dim.Render(": this island cannot renew it")
			}
		}
		out = append(out, lease)
	}
	// Sites on one line when they fit, one per line when they do not.
	var sites []string
	for _, s := range g.Sites {
		w := s.Name + " "
		if s.Arbitrator {
			w += "arbitrator"
		} else {
			w += s.GeoRole + "/" + s.ServiceRole
		}
		if !s.Reachable {
			w += " " + st.bad.Render("UNREACHABLE")
		}
		sites = append(sites, w)
	}
	if line := "  " + strings.Join(sites, st.dim.Render(" · ")); ansi.StringWidth(line) <= p.w {
		out = append(out, line)
	} else {
		for _, s := range sites {
			out = append(out, "  "+s)
		}
	}
	return out
}

func (p *detailPane) node(n protocol.Node, now time.Time) []string {
	st := p.env.st
	head := st.nodeState(n.State)
	if n.Role != "" {
		head += " · " + n.Role
	}
	head += fmt.Sprintf(" · %s", n.Member)
	if !n.Since.IsZero() {
		head += " since " + clock(n.Since, now)
	}
	if n.Unclean {
		head += " · " + st.bad.Render("UNCLEAN: not verifiably fenced")
	}
	out := []string{p.section("NODE "+n.Name, head)}
	var facts []string
	if n.Addr != "" {
		facts = append(facts, n.Addr)
	}
	if n.Version != "" {
		facts = append(facts, "agent "+n.Version)
	}
	if n.Maintenance {
		facts = append(facts, st.info.Render("resources unmanaged"))
	}
	if len(facts) > 0 {
		out = append(out, "  "+strings.Join(facts, " · "))
	}
	out = append(out, p.links(n.Links, now)...)
	return out
}

// links draws a node's heartbeat paths: a path whose links are all up
// takes one line naming its peers, so that a healthy node leaves the
// screen to what is not; a link that is down gets a line of its own.
func (p *detailPane) links(ls []protocol.Link, now time.Time) []string {
	st := p.env.st
	var paths []string
	byPath := map[string][]protocol.Link{}
	for _, l := range ls {
		if _, ok := byPath[l.Path]; !ok {
			paths = append(paths, l.Path)
		}
		byPath[l.Path] = append(byPath[l.Path], l)
	}
	peerW := 8
	for _, l := range ls {
		peerW = max(peerW, min(ansi.StringWidth(l.Peer), 12))
	}
	var out []string
	for _, path := range paths {
		group := byPath[path]
		up := 0
		for _, l := range group {
			if l.Up {
				up++
			}
		}
		if len(group) > 1 {
			// One line for the path: who is up, then who is not.
			var ups, downs []string
			var since time.Time
			for _, l := range group {
				if l.Up {
					ups = append(ups, l.Peer)
					continue
				}
				downs = append(downs, l.Peer)
				if l.LastSeen.After(since) {
					since = l.LastSeen
				}
			}
			s := "  link " + fit(path, peerW) + " "
			if up == len(group) {
				s += st.ok.Render(fmt.Sprintf("up %d/%d", up, len(group)))
			} else {
				s += st.bad.Render(fmt.Sprintf("up %d/%d", up, len(group)))
			}
			if len(ups) > 0 {
				s += " " + st.dim.Render(strings.Join(ups, " "))
			}
			if len(downs) > 0 {
				s += " · " + st.bad.Render("DOWN") + " " + strings.Join(downs, " ")
				if !since.IsZero() {
					s += st.dim.Render(" last seen " + ago(since, now))
				}
			}
			out = append(out, s)
			continue
		}
		for _, l := range group {
			s := "  link " + fit(l.Peer, peerW) + " " + fit(l.Path, 6) + " "
			if l.Up {
				s += st.ok.Render("up")
				if l.RTT > 0 {
					s += " " + l.RTT.Round(10*time.Microsecond).String()
				}
			} else {
				s += st.bad.Render("DOWN")
				if !l.LastSeen.IsZero() {
					s += " last seen " + ago(l.LastSeen, now)
				}
			}
			if l.Detail != "" {
				s += " " + st.dim.Render(l.Detail)
			}
			out = append(out, s)
		}
	}
	return out
}

func (p *detailPane) cluster(site string, c *protocol.Cluster, now time.Time) []string {
	st := p.env.st
	name := strings.ToUpper(site)
	if !strings.HasPrefix(name, "SITE") {
		name = "SITE " + name
	}
	if c.Name != "" && c.Name != site {
		name += " · " + strings.ToUpper(c.Name)
	}
	rest := ""
	if snap := p.env.snap(); outOfSight(snap, site) {
		rest = st.warn.Render("out of sight") + st.dim.Render(": as "+snap.Island.Node+" last saw it")
	} else if sd := cutOff(snap, site); sd != nil {
		rest = st.warn.Render("cut off") + st.dim.Render(": as "+sd.Via+" sees it")
	}
	out := []string{p.section(name, rest)}
	// Each risk in full, where there is room for it: the header has one
	// line per cluster.
	for _, r := range c.Quorum.Risks {
		for i, l := range wrap(r, p.w-8) {
			lead := "  " + st.warn.Render("RISK") + " "
			if i > 0 {
				lead = "       "
			}
			out = append(out, lead+l)
		}
	}
	for _, g := range c.Groups {
		name := g.Name
		if name == "" {
			name = "(not formed yet)" // its cluster has not written its first decision
		}
		line := "  group " + st.bold.Render(name) + " " + p.resState(g.State)
		if g.Active != "" {
			line += " on " + g.Active
		}
		if g.Reason != "" {
			line += st.dim.Render(" — " + g.Reason)
		}
		out = append(out, line)
		for _, r := range g.Resources {
			state := p.resState(r.State)
			if r.Warm && r.Node != g.Active && r.State == "started" {
				// Running, ready for the address: the healthy state of a
				// warm standby, not a second holder.
				state = st.ok.Render("warm standby")
			}
			line := "    " + fit(r.Name, 12) + " " + st.dim.Render(fit(r.Type, 10)) + " " + fit(r.Node, 8) + " " + state
			if r.FailCount > 0 {
				line += " " + st.warn.Render(fmt.Sprintf("fail-count %d", r.FailCount))
			}
			for _, ch := range r.Checks {
				if !ch.OK {
					line += " " + st.bad.Render("check "+ch.Name+" FAILING") + st.dim.Render(" "+ch.Output)
				}
			}
			out = append(out, line)
		}
	}
	if len(c.Failed) > 0 {
		out = append(out, "  "+st.bad.Render("FAILED ACTIONS"))
		for _, f := range c.Failed {
			out = append(out, fmt.Sprintf("    %s on %s: %s — %s (%s)", f.Resource, f.Node, f.Op, f.Reason, clock(f.At, now)))
		}
	}
	for _, d := range c.Databases {
		out = append(out, p.database(d, now)...)
	}
	for _, s := range c.Switches {
		out = append(out, p.switchLine(s, now)...)
	}
	return out
}

func (p *detailPane) resState(s string) string {
	st := p.env.st
	switch s {
	case "started":
		return st.ok.Render(s)
	case "failed":
		return st.bad.Render("FAILED")
	case "unmanaged", "starting", "stopping":
		return st.warn.Render(s)
	}
	return s
}

// database draws one database: a line with its role, timeline, lag and
// streaming state (or, for one that is down, since when and where it
// was), then what needs a word of its own: catch-up progress, a re-seed
// bar, a master's slots and pg_wal's disk, and each notice with what to do.
func (p *detailPane) database(d protocol.Database, now time.Time) []string {
	st := p.env.st
	role := d.Role
	switch role {
	case "master":
		role = st.ok.Render(fit(role, 11))
	case "down":
		role = st.bad.Render(fit("DOWN", 11))
	case "unknown":
		role = st.warn.Render(fit("UNKNOWN", 11))
	default:
		role = fit(role, 11)
	}
	line := "  db " + fit(d.Node, 8) + " " + role
	if d.Timeline > 0 {
		line += fmt.Sprintf(" tl %d", d.Timeline)
	}
	absent := d.Role == "down" || d.Role == "unknown"
	switch {
	case absent:
		if d.Since != nil {
			line += " since " + clock(*d.Since, now)
		}
		if d.LSN != "" {
			line += " last at " + d.LSN
		}
	case d.Role != "master":
		lag := "lag " + bytesIEC(d.LagBytes)
		if d.LagSeconds != nil {
			lag += fmt.Sprintf(" %.1fs", *d.LagSeconds)
		}
		line += " " + lag
		switch {
		case d.Reseed != nil: // the re-seed line below says why it does not stream
		case d.Streaming:
			line += " streaming"
		default:
			line += " " + st.warn.Render("not streaming")
		}
	}
	if d.SeenBy != "" {
		line += " " + st.dim.Render("(seen by "+d.SeenBy+")")
	}
	if !d.Healthy && d.Reseed == nil && d.SeenBy == "" { // an absent peer's notice says why
		h := d.Health
		if h == "" {
			h = "unhealthy"
		}
		line += " " + st.bad.Render(h)
	}
	out := []string{line}
	if c := d.CatchUp; c != nil {
		s := "     " + st.warn.Render("CATCHING UP") + " " + bytesIEC(c.BytesBehind) + " behind"
		if c.RateBytes > 0 {
			s += fmt.Sprintf(" · %s/s", bytesIEC(int64(c.RateBytes)))
		}
		if c.ETASeconds != nil {
			s += " · ~" + (time.Duration(*c.ETASeconds) * time.Second).Round(time.Second).String() + " left"
		}
		out = append(out, s+" "+st.dim.Render("since "+clock(c.Since, now)+", left to catch up"))
	}
	if r := d.Reseed; r != nil {
		out = append(out, p.reseed(r))
	}
	// A healthy slot (its standby connected, nothing to warn of) shares
	// the pg_wal line; a slot to act on has a line of its own.
	var quiet []string
	for _, sl := range d.Slots {
		s := "slot " + sl.Name
		if sl.Node != "" && sl.Node != sl.Name {
			s += " → " + sl.Node
		}
		if sl.Active && !sl.Warning && sl.WALStatus != "lost" {
			quiet = append(quiet, s+" holds "+bytesIEC(sl.RetainedBytes))
			continue
		}
		s = "     " + s
		if sl.Active {
			s += " active"
		} else {
			s += " " + st.warn.Render("inactive")
		}
		s += " holds " + bytesIEC(sl.RetainedBytes)
		if sl.Warning {
			s += " " + st.bad.Render("WARN")
		}
		if sl.WALStatus == "lost" {
			s += " " + st.bad.Render("LOST")
		} else if sl.SafeBytes != nil {
			s += st.dim.Render(" · dropped after " + bytesIEC(*sl.SafeBytes) + " more")
		}
		out = append(out, s)
	}
	if disk := d.WALDisk; disk != nil && len(d.Slots) > 0 {
		l := fmt.Sprintf("     pg_wal disk %.0f%% used, %s free", disk.UsedPercent, bytesIEC(disk.FreeBytes))
		if len(quiet) > 0 {
			l += st.dim.Render(" · " + strings.Join(quiet, " · "))
		}
		out = append(out, l)
	} else if len(quiet) > 0 {
		out = append(out, "     "+strings.Join(quiet, " · "))
	}
	for _, n := range d.Notices {
		word := st.dim.Render("note")
		switch n.Severity {
		case protocol.SevCritical:
			word = st.bad.Render("CRITICAL")
		case protocol.SevWarning:
			word = st.warn.Render("WARNING")
		}
		for i, l := range wrap(n.Message, max(20, p.w-16)) {
			if i == 0 {
				out = append(out, "     "+word+" "+l)
			} else {
				out = append(out, "       "+l)
			}
		}
		if n.Hint != "" {
			for i, l := range wrap(n.Hint, max(20, p.w-11)) {
				lead := "       "
				if i == 0 {
					lead = "     → "
				}
				out = append(out, lead+st.dim.Render(l))
			}
		}
	}
	return out
}

// reseed draws the re-seed progress bar. Percent runs 0–100; -1 means the
// step cannot be measured, which is said in words rather than drawn as
// an empty bar that looks stuck.
func (p *detailPane) reseed(r *protocol.Progress) string {
	st := p.env.st
	head := "     " + st.warn.Render("RESEED") + " "
	what := r.Message
	if what == "" {
		what = r.Step
	}
	if r.Percent < 0 {
		return head + "in progress · " + what
	}
	pct := min(r.Percent, 100)
	bw := min(30, max(10, p.w-36))
	p.bar.SetWidth(bw)
	return head + p.bar.ViewAs(pct/100) + fmt.Sprintf(" %3.0f%% ", pct) + st.dim.Render(what)
}

// switchLine draws a switch, and for one whose driving node does not
// answer, what the device does by itself meanwhile: a device never drops
// off the screen with its driver.
func (p *detailPane) switchLine(s protocol.Switch, now time.Time) []string {
	st := p.env.st
	line := "  " + fit(s.Kind, 5) + " " + fit(s.Name, 10) + " "
	if s.Stale {
		// The driver first: it is what changed; the device's state
		// is from before, said in words below.
		out := []string{line + "driver " + s.Node + " " + p.driverState(s.Node)}
		for _, l := range wrap(lastKnown(s, now), p.w-8) {
			out = append(out, "        "+st.dim.Render(l))
		}
		return out
	}
	if !s.Reachable {
		line += st.bad.Render("UNREACHABLE") + " "
	}
	if s.Kind == "line" {
		pos := s.Position
		if pos == "" {
			pos = "?"
		}
		line += "lines → " + pos
		if s.Verified {
			line += " " + st.ok.Render("verified")
		} else {
			line += " " + st.warn.Render("unverified")
		}
	}
	line += strings.Join(p.outlets(s), " · ")
	if s.Error != "" {
		line += " " + st.bad.Render(s.Error)
	}
	if s.Kind == "line" && s.WatchdogTimeout > 0 && s.Failsafe != "" {
		switch s.Watchdog {
		case "on":
			line += st.dim.Render(fmt.Sprintf(" · watchdog %s → %s", s.WatchdogTimeout, s.Failsafe))
		case "failed":
			line += st.dim.Render(" · ") + st.warn.Render("watchdog fired, unarmed")
		}
	}
	return []string{line}
}

func (p *detailPane) outlets(s protocol.Switch) []string {
	st := p.env.st
	var outs []string
	for _, o := range s.Outlets {
		w := o.Name
		if o.Node != "" {
			w += " " + o.Node
		}
		if o.On {
			w += " " + st.ok.Render("on")
		} else {
			w += " " + st.bad.Render("OFF")
		}
		if !o.Verified {
			w += "?"
		}
		outs = append(outs, w)
	}
	return outs
}

// driverState is the state word of a switch's driving node as this view
// has it.
func (p *detailPane) driverState(node string) string {
	snap := p.env.snap()
	n, ok := snap.FindNode(node)
	switch {
	case !ok:
		return p.env.st.bad.Render("UNKNOWN")
	case n.Member != protocol.MemberAlive && outOfSight(snap, n.Site):
		return p.env.st.warn.Render("out of sight")
	case n.Member == protocol.MemberAlive:
		return p.env.st.warn.Render("not reporting")
	}
	return p.env.st.nodeState(n.State)
}

// lastKnown says where a switch without its driver was, and what it does
// by itself meanwhile: a berofos whose watchdog nobody kicks sends the
// lines to its failsafe side once its timeout has run from the last kick
// (no later than the timeout after the driver's last report); a device
// without one stays as it was.
func lastKnown(s protocol.Switch, now time.Time) string {
	at := clock(s.AsOf, now)
	if s.Kind != "line" {
		var outs []string
		for _, o := range s.Outlets {
			w := o.Name + " " + o.Node + " off"
			if o.On {
				w = o.Name + " " + o.Node + " on"
			}
			outs = append(outs, strings.Join(strings.Fields(w), " "))
		}
		return fmt.Sprintf("at %s: %s; outlets keep their state without a driver", at, strings.Join(outs, ", "))
	}
	where := "lines at an unknown position"
	if s.Position != "" {
		where = "lines on " + s.Position
	}
	switch {
	case s.Watchdog == "failed" && s.Failsafe != "":
		return fmt.Sprintf("at %s: its watchdog had fired, lines on %s", at, s.Failsafe)
	case s.Watchdog == "on" && s.WatchdogTimeout > 0 && s.Failsafe != "" && s.Position != s.Failsafe:
		by := s.AsOf.Add(s.WatchdogTimeout)
		if now.Before(by) {
			return fmt.Sprintf("at %s: %s; its watchdog sends them to %s by %s (%s after the last kick)", at, where, s.Failsafe, clock(by, now), s.WatchdogTimeout)
		}
		return fmt.Sprintf("at %s: %s; its watchdog has sent them to %s, by %s at the latest (unverified)", at, where, s.Failsafe, clock(by, now))
	case s.Watchdog == "on" && s.Failsafe != "":
		return fmt.Sprintf("at %s: %s, its failsafe side: they stay there", at, where)
	}
	return fmt.Sprintf("at %s: %s; no watchdog: they stay there until a node drives the switch again", at, where)
}
