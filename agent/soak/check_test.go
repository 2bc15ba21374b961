package soak

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func on(nodes ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range nodes {
		m[n] = true
	}
	return m
}

// TestTimelineFindsBreaches feeds samples that break each invariant and
// checks each is found once, when it starts, and that the summary
// measures availability and the longest outage.
func TestTimelineFindsBreaches(t *testing.T) {
	tl := NewTimeline(topo)
	steps := []struct {
		at   int
		run  map[string]bool
		want string
	}{
		{0, on(), ""},
		{1000, on("a1"), ""},
		{2000, on("a1", "a2"), "site a's group runs on a1 and a2 at once"},
		{2010, on("a1", "a2"), ""}, // the same breach, still going
		{3000, on("a2"), ""},
		{4000, on(), ""}, // outage 4 s..6 s
		{6000, on("b1"), ""},
		{7000, on("b1", "a1"), "sites a and b serve at once"},
		{8000, on("b1"), ""},
		{10000, on("b1"), ""},
	}
	for _, s := range steps {
		got := tl.Record(ms(s.at), s.run)
		switch {
		case s.want == "" && len(got) != 0:
			t.Fatalf("at %dms: breach %v, want none", s.at, got)
		case s.want != "" && (len(got) != 1 || got[0].What != s.want):
			t.Fatalf("at %dms: breaches %v, want %q", s.at, got, s.want)
		}
	}
	tl.Inject(Injected{Fault: Fault{Kind: Crash, Target: "a1", For: time.Second}, Start: ms(3500), End: ms(4500)})
	sum := tl.Summarize(5)
	if len(sum.Breaches) != 2 {
		t.Errorf("summary has %d breaches, want 2", len(sum.Breaches))
	}
	if sum.LongestOutage != 2*time.Second || sum.OutageAt != 4*time.Second {
		t.Errorf("longest outage %v from %v, want 2s from 4s", sum.LongestOutage, sum.OutageAt)
	}
	if want := 7.0 / 9.0; sum.Availability < want-0.001 || sum.Availability > want+0.001 {
		t.Errorf("availability %.3f, want %.3f (served 7 s of the 9 s since a site first served)", sum.Availability, want)
	}
	if sum.FaultsByKind[Crash] != 1 {
		t.Errorf("faults by kind: %v", sum.FaultsByKind)
	}
	if txt := sum.Text(); !strings.Contains(txt, "breaches: 2") || !strings.Contains(txt, "crash=1") {
		t.Errorf("report text:\n%s", txt)
	}
	svg := tl.SVG()
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("the timeline is not well-formed SVG: %v", err)
	}
	for _, want := range []string{"a1 holds", "crash a1", "sites a and b serve at once"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the timeline does not show %q", want)
		}
	}
}
