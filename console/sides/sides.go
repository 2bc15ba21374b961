// Package sides builds one view of a deployment from the views of several
// entry agents, one per site. Without a partition they agree and the view
// is any of them. With one, each entry sees only its side: the agents in
// the cut-off site believe what they last heard, and only the side that
// holds the geo majority sees the dead man's countdown. A console outside
// the partition is the one place both sides can be seen, so the merged
// view is built on the majority side's word, takes each site it cannot
// reach from a side that can, and says what every side believes.
package sides

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Reach returns the sites a view reaches: its island's when it is cut off
// from the geo majority, else every site where it sees a node alive. The
// site of the answering node is always in it.
func Reach(s *protocol.Snapshot) []string {
	if s == nil {
		return nil
	}
	if s.Island != nil {
		return slices.Clone(s.Island.Sites)
	}
	var out []string
	for _, site := range s.Sites {
		for _, c := range site.Clusters {
			if slices.ContainsFunc(c.Nodes, func(n protocol.Node) bool {
				return n.Member == protocol.MemberAlive || n.Name == s.From
			}) {
				out = append(out, site.Name)
				break
			}
		}
	}
	return out
}

// Merge returns the deployment as seen through views, each the latest
// snapshot of one entry agent (nil entries are skipped). primary names the
// entry the console was started with; its view is used while nothing
// disagrees. The result is a new snapshot; the views are not changed.
func Merge(views []*protocol.Snapshot, primary string) *protocol.Snapshot {
	views = slices.DeleteFunc(slices.Clone(views), func(s *protocol.Snapshot) bool { return s == nil })
	if len(views) == 0 {
		return nil
	}
	// The primary first, then the others in a stable order.
	slices.SortStableFunc(views, func(a, b *protocol.Snapshot) int {
		switch {
		case a.From == primary:
			return -1
		case b.From == primary:
			return 1
		case a.From < b.From:
			return -1
		case a.From > b.From:
			return 1
		}
		return 0
	})
	reach := make([][]string, len(views))
	for i, v := range views {
		reach[i] = Reach(v)
	}
	// One side per distinct reach; the first view of each stands for it.
	var sides []int
	for i := range views {
		if !slices.ContainsFunc(sides, func(j int) bool { return sameSet(reach[i], reach[j]) }) {
			sides = append(sides, i)
		}
	}
	if len(sides) == 1 || !split(views, reach) {
		// Every entry sees the same part of the deployment, or they
		// differ only while gossip settles: nothing to merge (an island
		// says so itself).
		return views[0]
	}
	// The base is the side that holds the geo majority (no island), the
	// one that reaches most sites among them; the primary when none does.
	base := -1
	for _, i := range sides {
		if views[i].Island == nil && (base < 0 || len(reach[i]) > len(reach[base])) {
			base = i
		}
	}
	quorum := ""
	if base >= 0 {
		quorum = views[base].From
	} else {
		base = 0
	}
	out := *views[base]
	out.Sites = slices.Clone(out.Sites)
	for k, site := range out.Sites {
		if slices.Contains(reach[base], site.Name) {
			continue
		}
		// A site the base cannot see: as a side that reaches it sees it.
		for _, i := range sides {
			if i == base || !slices.Contains(reach[i], site.Name) {
				continue
			}
			if j := slices.IndexFunc(views[i].Sites, func(s protocol.Site) bool { return s.Name == site.Name }); j >= 0 {
				out.Sites[k] = views[i].Sites[j]
			}
			break
		}
	}
	p := &protocol.Partition{Quorum: quorum}
	order := append([]int{base}, slices.DeleteFunc(slices.Clone(sides), func(i int) bool { return i == base })...)
	for _, i := range order {
		v := views[i]
		sd := protocol.Side{Via: v.From, Sites: reach[i], Island: v.Island != nil}
		if v.Geo != nil {
			sd.Holder, sd.LeaseExpiry = v.Geo.Ticket.Holder, v.Geo.Ticket.LeaseExpiry
			if v.Geo.Pending != nil && (v.Geo.Pending.State == "" || v.Geo.Pending.State == "pending") {
				f := *v.Geo.Pending
				sd.Pending = &f
			}
		}
		p.Sides = append(p.Sides, sd)
	}
	out.Partition = p
	if quorum != "" {
		out.Island = nil
	}
	return &out
}

// SiteSide returns the side of p through which site is seen, or nil when
// p is nil or no side reaches it.
func SiteSide(p *protocol.Partition, site string) *protocol.Side {
	if p == nil {
		return nil
	}
	for i := range p.Sides {
		if slices.Contains(p.Sides[i].Sites, site) {
			return &p.Sides[i]
		}
	}
	return nil
}

// split reports whether the views show a partition: one of them is an
// island, or a site that one view has lost (every node of it failed) is
// reached by another. Sites a view has not heard from yet (at start) do
// not count: that is gossip settling, not a cut.
func split(views []*protocol.Snapshot, reach [][]string) bool {
	for i, v := range views {
		if v.Island != nil {
			return true
		}
		for _, site := range v.Sites {
			lost := len(site.Clusters) > 0
			for _, c := range site.Clusters {
				for _, n := range c.Nodes {
					lost = lost && n.Member == protocol.MemberFailed
				}
			}
			if !lost {
				continue
			}
			for j := range views {
				if j != i && slices.Contains(reach[j], site.Name) {
					return true
				}
			}
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// Describe says which sites see which, the geo majority's side first,
// and what each other side still believes of the geo ticket:
// "sites arb, b (through arbitrator, geo majority) are cut off from site a
// (through pbx-a1, an island that believes a holds the geo ticket; its
// lease has expired)".
func Describe(p *protocol.Partition, now time.Time) string {
	var parts []string
	for i, sd := range p.Sides {
		s := sitesWord(sd.Sites) + " (through " + sd.Via
		switch {
		case sd.Via == p.Quorum:
			s += ", geo majority"
		case sd.Island:
			s += ", an island"
		}
		if i > 0 && sd.Holder == "" && sd.Island {
			s += " where no site holds the geo ticket"
		}
		if i > 0 && sd.Holder != "" {
			if !sd.Island {
				s += ","
			}
			s += " that believes " + sd.Holder + " holds the geo ticket"
			if !sd.LeaseExpiry.IsZero() {
				if left := sd.LeaseExpiry.Sub(now); left > 0 {
					s += fmt.Sprintf(" for %s more", left.Round(time.Second))
				} else {
					s += "; its lease has expired"
				}
			}
		}
		parts = append(parts, s+")")
	}
	verb := " is cut off from "
	if len(p.Sides[0].Sites) > 1 {
		verb = " are cut off from "
	}
	out := parts[0]
	if len(parts) > 1 {
		out += verb + strings.Join(parts[1:], " and from ")
	}
	if p.Quorum == "" {
		out += "; no side holds the geo majority"
	}
	return out
}

func sitesWord(sites []string) string {
	if len(sites) == 1 {
		return "site " + sites[0]
	}
	return "sites " + strings.Join(sites, ", ")
}
