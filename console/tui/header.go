package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/hatui/hatui/console/sides"
	"github.com/hatui/hatui/protocol"
)

// header is the cluster summary: two lines of facts, then a loud line
// for every quorum loss, risk, pending geo failover or lost connection.
// Warnings are capped so that the node list always keeps most of the
// screen; the cap line says how many more there are.
func (m *Model) header(w, h int) []string {
	st := m.st
	now := m.opts.Now()
	dep := "—"
	if m.snap != nil && m.snap.Deployment != "" {
		dep = m.snap.Deployment
	}
	l1 := st.header.Render("hatui") + st.dim.Render(" · ") + st.bold.Render(dep)
	via := m.agent()
	switch {
	case via == "" && !m.connKnown:
		l1 += st.dim.Render(" · connecting…")
	case m.connKnown && !m.connected:
		l1 += " · " + st.bad.Render("DISCONNECTED") + " (was via " + via + ")"
	default:
		l1 += st.dim.Render(" · via ") + via
	}
	right := st.dim.Render(clock(now, now))
	if lc := m.lastChange(); !lc.IsZero() {
		l1 += st.dim.Render(" · last change ") + clock(lc, now) + st.dim.Render(" ("+ago(lc, now)+")")
	}
	l1 = fit(l1, max(w-ansi.StringWidth(right)-1, 0)) + " " + right

	var l2 string
	if m.snap != nil {
		c := countNodes(m.snap)
		sites := 0
		for _, s := range m.snap.Sites {
			if !s.Arbitrator {
				sites++
			}
		}
		parts := []string{plural(sites, "site")}
		if sites != len(m.snap.Sites) {
			parts[0] += fmt.Sprintf(" + %d arbitrator", len(m.snap.Sites)-sites)
		}
		parts = append(parts, fmt.Sprintf("%s configured", plural(c.total, "node")))
		parts = append(parts, st.ok.Render(fmt.Sprintf("%d online", c.online)))
		for _, x := range []struct {
			n    int
			word string
			bad  bool
		}{{c.standby, "standby", false}, {c.maint, "maintenance", false}, {c.offline, "OFFLINE", true}, {c.unclean, "UNCLEAN", true},
			{c.unseen, "out of sight (island)", true}} {
			if x.n == 0 {
				continue
			}
			s := fmt.Sprintf("%d %s", x.n, x.word)
			if x.bad {
				s = st.bad.Render(s)
			} else {
				s = st.warn.Render(s)
			}
			parts = append(parts, s)
		}
		l2 = strings.Join(parts, st.dim.Render(" · "))
	} else {
		l2 = st.dim.Render("waiting for the agent's first snapshot…")
	}

	lines := []string{fit(l1, w), fit(l2, w)}
	warns := m.warnings(now)
	limit := max(1, h/8)
	if len(warns) > limit {
		// The last line names what did not fit, so nothing is hidden
		// without a trace.
		rest := warns[limit-1:]
		var tags []string
		for _, r := range rest {
			tags = append(tags, r.tag)
		}
		word := "more"
		if limit == 1 {
			word = "warnings"
		}
		warns = append(warns[:limit-1], warning{text: st.loud.Render(fmt.Sprintf("!! %d %s:", len(rest), word)) + " " + strings.Join(tags, st.dim.Render(" · "))})
	}
	for _, wl := range warns {
		lines = append(lines, fit(wl.text, w))
	}
	return lines
}

// warning is one loud header line; tag names it in a summary line.
type warning struct {
	tag, text string
}

// warnings are the things an operator must not miss, most urgent first:
// a lost connection, a view that is an island, a pending geo failover,
// then one line per cluster (no quorum first, then risks, those that
// appeared since the console connected before those that were there all
// along), so that what changed is on the first screen.
func (m *Model) warnings(now time.Time) []warning {
	st := m.st
	var out []warning
	if m.connKnown && !m.connected {
		when := "never"
		if m.snap != nil {
			when = clock(m.snap.Time, now)
		}
		out = append(out, warning{"DISCONNECTED", st.loud.Render("!! DISCONNECTED") + " from " + m.via + ": the state shown is from " + when})
	}
	if m.snap == nil {
		return out
	}
	if pt := m.snap.Partition; pt != nil {
		out = append(out, warning{"PARTITION", st.loud.Render("!! PARTITION") + " " + sides.Describe(pt, now)})
	}
	if is := m.snap.Island; is != nil {
		out = append(out, warning{"ISLAND", st.loud.Render("!! ISLAND") + " " + islandText(is)})
	}
	if g := m.snap.Geo; g != nil && g.Pending != nil && (g.Pending.State == "" || g.Pending.State == "pending") {
		f := g.Pending
		left := f.Expires.Sub(now)
		s := st.loud.Render("!! GEO FAILOVER") + fmt.Sprintf(" %s → %s ", f.From, f.To)
		if left > 0 {
			s += "by itself in " + st.loud.Render(countdown(left)) + " · c confirm · a abort"
		} else {
			s += st.loud.Render("timer expired") + ": failing over now"
		}
		out = append(out, warning{"GEO FAILOVER " + countdown(left), s})
	}
	var lost, fresh, standing []warning
	for _, site := range m.snap.Sites {
		if outOfSight(m.snap, site.Name) {
			continue // the island line speaks for it: this view cannot see it
		}
		for _, c := range site.Clusters {
			name := clusterName(site.Name, c.Name)
			q := c.Quorum
			noQuorum := q.Voters > 0 && !q.HasQuorum
			if !noQuorum && len(q.Risks) == 0 {
				continue
			}
			tag := "RISK " + name
			s := st.loud.Render("!! RISK") + " " + name + ": "
			if noQuorum {
				tag = "NO QUORUM " + name
				s = st.loud.Render("!! NO QUORUM") + " " + name + fmt.Sprintf(": %d of %d voters present", q.Present, q.Voters)
				if len(q.Risks) > 0 {
					s += st.dim.Render(" · ") + st.warn.Render("RISK") + " "
				}
			}
			if len(q.Risks) > 1 {
				s += fmt.Sprintf("(%d) ", len(q.Risks))
			}
			s += strings.Join(q.Risks, st.dim.Render(" · "))
			w := warning{tag, s}
			switch {
			case noQuorum:
				lost = append(lost, w)
			case m.standingRisk(name, q.Risks):
				standing = append(standing, w)
			default:
				fresh = append(fresh, w)
			}
		}
	}
	out = append(out, lost...)
	out = append(out, fresh...)
	return append(out, standing...)
}

// clusterName names a cluster as the screen does: its site, and the
// cluster after a slash when it has a name of its own.
func clusterName(site, cluster string) string {
	if cluster != "" && cluster != site {
		return site + "/" + cluster
	}
	return site
}

// islandText says what an island view is: whose, what it reaches, and what
// that means for the rest.
func islandText(is *protocol.Island) string {
	verb := "is"
	if len(is.Unreached) > 1 {
		verb = "are"
	}
	return fmt.Sprintf("%s reaches only %s (%d of %d geo votes): %s %s out of sight and may fail over without it",
		is.Node, sitesWord(is.Sites), is.Votes, is.Total, strings.Join(is.Unreached, ", "), verb)
}

func sitesWord(sites []string) string {
	if len(sites) == 1 {
		return "site " + sites[0]
	}
	return "sites " + strings.Join(sites, ", ")
}

// cutOff returns the side a site is seen through when it is not the
// geo majority's, or nil.
func cutOff(s *protocol.Snapshot, site string) *protocol.Side {
	if s == nil || s.Partition == nil {
		return nil
	}
	sd := sides.SiteSide(s.Partition, site)
	if sd == nil || sd.Via == s.Partition.Quorum {
		return nil
	}
	return sd
}

// outOfSight reports whether a site lies outside the island the answering
// agent is on.
func outOfSight(s *protocol.Snapshot, site string) bool {
	return s != nil && s.Island != nil && slices.Contains(s.Island.Unreached, site)
}

// standingRisk reports whether a cluster's risks are those it had when
// the console first saw the deployment: known, and so after what changed.
func (m *Model) standingRisk(cluster string, risks []string) bool {
	was, ok := m.baseline[cluster]
	return ok && slices.Equal(was, risks)
}

// lastChange is the newest LastChange of any cluster.
func (m *Model) lastChange() time.Time {
	var t time.Time
	if m.snap == nil {
		return t
	}
	for _, s := range m.snap.Sites {
		for _, c := range s.Clusters {
			if c.LastChange.After(t) {
				t = c.LastChange
			}
		}
	}
	return t
}
