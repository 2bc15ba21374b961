package soak

import (
	"testing"
	"time"
)

var topo = Topology{Nodes: map[string][]string{"a": {"a1", "a2"}, "b": {"b1", "b2"}}, Sites: []string{"a", "b"}}

func TestPlanIsReproducible(t *testing.T) {
	spec := Spec{Seed: 5, Duration: 10 * time.Minute, MinFault: time.Second, MaxFault: 8 * time.Second, Settle: 3 * time.Second}
	p1, p2 := Plan(spec, topo), Plan(spec, topo)
	if Describe(p1) != Describe(p2) {
		t.Fatalf("the same seed planned two schedules:\n%s\n%s", Describe(p1), Describe(p2))
	}
	spec.Seed = 6
	if Describe(Plan(spec, topo)) == Describe(p1) {
		t.Fatal("seeds 5 and 6 planned the same schedule")
	}
	seen := map[Kind]int{}
	var end time.Duration
	for i, f := range p1 {
		seen[f.Kind]++
		if f.At < end {
			t.Fatalf("fault %d (%s) starts before the previous one healed (%v)", i, f, end)
		}
		if f.For != 0 && (f.For < spec.MinFault || f.For > spec.MaxFault) {
			t.Fatalf("fault %s lasts outside %v..%v", f, spec.MinFault, spec.MaxFault)
		}
		end = f.At + f.For + spec.Settle
	}
	if end-spec.Settle > spec.Duration {
		t.Fatalf("the plan runs past its duration: %v", end)
	}
	for _, k := range kinds {
		if seen[k] == 0 {
			t.Errorf("ten minutes of faults and no %s:\n%s", k, Describe(p1))
		}
	}
}
