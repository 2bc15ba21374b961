package failover

import (
	"strings"
	"testing"
)

// geoSite is the init of a geo site's cluster as its witness proposes
// it: the witness has no [geo] section and activate = true, so its init
// asks to activate on forming.
func geoSite() *State {
	st := newState()
	st.apply(&command{Op: opInit, Cluster: "site-b", Group: "pbx-b", Activate: true,
		Voters: []Voter{{Name: "b1"}, {Name: "b2"}, {Name: "wb", Witness: true}}})
	return st
}

// TestWitnessActivateWaitsForGeoNode is the double service seen at a
// first start: the witness (activate = true, no [geo]) won the init and
// the cluster of the backup site activated as soon as it formed, before
// its geo-driven node had joined (whose geo manager had already been
// told "already stopped"). Now the activate waits for every voter, and
// a geo-driven voter's hello cancels it.
func TestWitnessActivateWaitsForGeoNode(t *testing.T) {
	st := geoSite()
	if st.Activated {
		t.Fatal("the cluster activated on the witness's init, before any voter joined")
	}
	st.apply(&command{Op: opHello, Node: "wb", Inc: "w1"})
	st.apply(&command{Op: opHello, Node: "b2", Inc: "x1"})
	if st.Activated {
		t.Fatal("the cluster activated with the geo-driven b1 not yet joined")
	}
	if why := st.ineligible("b2"); !strings.Contains(why, "waiting for b1") {
		t.Fatalf("b2 may hold the group (%q) while b1 has not joined", why)
	}
	if r := st.apply(&command{Op: opAcquire, Node: "b2", Inc: "x1", Evidence: EvidenceVacant}); r.Err == nil || st.Group.Holder != "" {
		t.Fatalf("b2 acquired the group of an inactive cluster: %+v, holder %q", r, st.Group.Holder)
	}
	st.apply(&command{Op: opHello, Node: "b1", Inc: "g1", Geo: true})
	if st.Activated || st.AutoActivate {
		t.Fatalf("a geo-driven voter joined and the cluster still activates by itself (activated %v, pending %v)", st.Activated, st.AutoActivate)
	}
	// Hellos again (an agent restart) change nothing.
	st.apply(&command{Op: opHello, Node: "b2", Inc: "x2"})
	if st.Activated {
		t.Fatal("a later hello activated a geo-driven cluster")
	}
	// The geo manager's "cluster activate" does.
	st.apply(&command{Op: opActivate})
	if !st.Activated {
		t.Fatal("activate did not activate")
	}
	if r := st.apply(&command{Op: opAcquire, Node: "b1", Inc: "g1", Evidence: EvidenceVacant}); r.Err != nil {
		t.Fatalf("acquire after activate: %v", r.Err)
	}
}

// TestActivateOnFormingWithoutGeo: without a geo-driven voter the
// configuration's activate still happens by itself, once every voter
// has joined.
func TestActivateOnFormingWithoutGeo(t *testing.T) {
	st := geoSite()
	for i, n := range []string{"b1", "wb", "b2"} {
		if st.Activated {
			t.Fatalf("activated after %d of 3 voters joined", i)
		}
		st.apply(&command{Op: opHello, Node: n, Inc: n + "-1"})
	}
	if !st.Activated || st.AutoActivate {
		t.Fatalf("all voters joined, none geo-driven: activated %v, pending %v", st.Activated, st.AutoActivate)
	}
}

// TestStopCancelsPendingActivate: a stop or disable before the cluster
// ever activated (what the geo manager sends a backup site) cancels the
// pending activate for good.
func TestStopCancelsPendingActivate(t *testing.T) {
	st := geoSite()
	st.apply(&command{Op: opHello, Node: "wb", Inc: "w1"})
	st.apply(&command{Op: opDeactivate})
	for _, n := range []string{"b1", "b2"} {
		st.apply(&command{Op: opHello, Node: n, Inc: n + "-1"})
	}
	if st.Activated {
		t.Fatal("the cluster activated by itself after a stop")
	}
}
