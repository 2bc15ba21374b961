package soak

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Breach is one invariant found broken.
type Breach struct {
	At   time.Duration
	What string
}

func (b Breach) String() string { return fmt.Sprintf("%7.2fs %s", b.At.Seconds(), b.What) }

// span is a stretch of time [from, to).
type span struct{ from, to time.Duration }

// Injected is a fault as it was carried out.
type Injected struct {
	Fault
	// Start and End are when it was injected and healed (End = Start
	// for faults with nothing to heal).
	Start, End time.Duration
}

// Timeline records what every PBX node ran while the faults happened,
// and checks the invariants on every sample:
//
//   - never two holders of a group: at most one node of a site runs the
//     site's group;
//   - never two sites serving: at most one site runs its group (the
//     geo ticket's service).
//
// It is not safe for concurrent use.
type Timeline struct {
	topo    Topology
	nodes   []string       // every PBX node, index = bit
	site    map[string]int // node → index of its site in topo.Sites
	last    uint64
	lastAt  time.Duration
	started bool
	runs    map[string][]span // node → when it ran its group
	open    map[string]time.Duration
	serving []span // when some site served
	servOn  bool
	servAt  time.Duration
	// Samples counts the samples; Checks the invariant checks made.
	Samples, Checks int
	Breaches        []Breach
	Faults          []Injected
	first           time.Duration // first time some site served, -1 before
	bad             map[string]bool
}

// NewTimeline returns an empty timeline of topo's nodes.
func NewTimeline(topo Topology) *Timeline {
	t := &Timeline{topo: topo, site: map[string]int{}, runs: map[string][]span{}, open: map[string]time.Duration{}, first: -1, bad: map[string]bool{}}
	for i, s := range topo.Sites {
		for _, n := range topo.Nodes[s] {
			t.nodes = append(t.nodes, n)
			t.site[n] = i
		}
	}
	return t
}

// Record adds a sample: which nodes ran their group at time at. It
// returns the breaches this sample starts (a breach that lasts is
// reported once, when it begins).
func (t *Timeline) Record(at time.Duration, running map[string]bool) []Breach {
	var bits uint64
	for i, n := range t.nodes {
		if running[n] {
			bits |= 1 << i
		}
	}
	t.Samples++
	for i, n := range t.nodes {
		on := bits&(1<<i) != 0
		was := t.started && t.last&(1<<i) != 0
		switch {
		case on && !was:
			t.open[n] = at
		case !on && was:
			t.runs[n] = append(t.runs[n], span{t.open[n], at})
			delete(t.open, n)
		}
	}
	var out []Breach
	perSite := make([][]string, len(t.topo.Sites))
	for i, n := range t.nodes {
		if bits&(1<<i) != 0 {
			perSite[t.site[n]] = append(perSite[t.site[n]], n)
		}
	}
	var sites []string
	for i, on := range perSite {
		t.Checks++
		key := "group:" + t.topo.Sites[i]
		if len(on) > 1 {
			if !t.bad[key] {
				out = append(out, Breach{at, fmt.Sprintf("site %s's group runs on %s at once", t.topo.Sites[i], strings.Join(on, " and "))})
			}
			t.bad[key] = true
		} else {
			t.bad[key] = false
		}
		if len(on) > 0 {
			sites = append(sites, t.topo.Sites[i])
		}
	}
	t.Checks++
	if len(sites) > 1 {
		if !t.bad["geo"] {
			out = append(out, Breach{at, fmt.Sprintf("sites %s serve at once", strings.Join(sites, " and "))})
		}
		t.bad["geo"] = true
	} else {
		t.bad["geo"] = false
	}
	serving := len(sites) > 0
	if serving && t.first < 0 {
		t.first = at
	}
	if serving && !t.servOn {
		t.servAt = at
	}
	if !serving && t.servOn {
		t.serving = append(t.serving, span{t.servAt, at})
	}
	t.servOn = serving
	t.last, t.lastAt, t.started = bits, at, true
	t.Breaches = append(t.Breaches, out...)
	return out
}

// Inject records a fault as carried out.
func (t *Timeline) Inject(f Injected) { t.Faults = append(t.Faults, f) }

// Serves says whether a site served at the last sample.
func (t *Timeline) Serves() bool { return t.servOn }

// close returns the spans with the open ones closed at the last sample.
func (t *Timeline) closed() (map[string][]span, []span) {
	runs := map[string][]span{}
	for n, s := range t.runs {
		runs[n] = slices.Clone(s)
	}
	for n, from := range t.open {
		runs[n] = append(runs[n], span{from, t.lastAt})
	}
	serving := slices.Clone(t.serving)
	if t.servOn {
		serving = append(serving, span{t.servAt, t.lastAt})
	}
	return runs, serving
}

// Summary is what a soak found, for the report.
type Summary struct {
	Seed     uint64
	Duration time.Duration
	Samples  int
	Checks   int
	Breaches []Breach
	// FaultsByKind counts the faults injected.
	FaultsByKind map[Kind]int
	// Availability is the share of the time, from the first time a site
	// served, that one did; SiteShare how much of it each site served.
	Availability  float64
	SiteShare     map[string]float64
	LongestOutage time.Duration
	// OutageAt is when the longest outage began.
	OutageAt time.Duration
	// RSS is each agent's resident memory in KiB at the start and the
	// end; Crashes lists agents that died without being killed.
	RSS     map[string][2]int64
	Crashes []string
}

// Summarize judges the timeline.
func (t *Timeline) Summarize(seed uint64) Summary {
	runs, serving := t.closed()
	s := Summary{Seed: seed, Duration: t.lastAt, Samples: t.Samples, Checks: t.Checks, Breaches: slices.Clone(t.Breaches),
		FaultsByKind: map[Kind]int{}, SiteShare: map[string]float64{}, RSS: map[string][2]int64{}}
	for _, f := range t.Faults {
		s.FaultsByKind[f.Kind]++
	}
	if t.first < 0 || t.lastAt <= t.first {
		return s
	}
	window := t.lastAt - t.first
	var up time.Duration
	prev := t.first
	for _, sp := range serving {
		up += sp.to - sp.from
		if gap := sp.from - prev; gap > s.LongestOutage {
			s.LongestOutage, s.OutageAt = gap, prev
		}
		prev = sp.to
	}
	if gap := t.lastAt - prev; !t.servOn && gap > s.LongestOutage {
		s.LongestOutage, s.OutageAt = gap, prev
	}
	s.Availability = float64(up) / float64(window)
	for _, site := range t.topo.Sites {
		var d time.Duration
		for _, n := range t.topo.Nodes[site] {
			for _, sp := range runs[n] {
				d += sp.to - sp.from
			}
		}
		s.SiteShare[site] = float64(d) / float64(window)
	}
	return s
}

// Text is the report's text.
func (s Summary) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %.0fs, %d samples, %d invariant checks\n", s.Seed, s.Duration.Seconds(), s.Samples, s.Checks)
	fmt.Fprintf(&b, "breaches: %d\n", len(s.Breaches))
	for _, br := range s.Breaches {
		fmt.Fprintf(&b, "  %s\n", br)
	}
	kinds := slices.Sorted(maps.Keys(s.FaultsByKind))
	b.WriteString("faults:")
	total := 0
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s=%d", k, s.FaultsByKind[k])
		total += s.FaultsByKind[k]
	}
	fmt.Fprintf(&b, " (total %d)\n", total)
	fmt.Fprintf(&b, "service availability %.2f%%, longest outage %.2fs (from %.1fs)\n", 100*s.Availability, s.LongestOutage.Seconds(), s.OutageAt.Seconds())
	sites := slices.Sorted(maps.Keys(s.SiteShare))
	for _, site := range sites {
		fmt.Fprintf(&b, "  site %s served %.1f%% of the time\n", site, 100*s.SiteShare[site])
	}
	names := make([]string, 0, len(s.RSS))
	for n := range s.RSS {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  agent %s RSS %d KiB at start, %d KiB at end\n", n, s.RSS[n][0], s.RSS[n][1])
	}
	if len(s.Crashes) > 0 {
		fmt.Fprintf(&b, "agents that died by themselves: %s\n", strings.Join(s.Crashes, ", "))
	}
	return b.String()
}
