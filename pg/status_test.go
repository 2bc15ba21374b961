package pg_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/pgtest"
)

func status(t *testing.T, s *pgtest.Server) *pg.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.Instance().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStatusMasterLocalGeo runs a master with a local standby and a geo
// standby (whose replay is delayed, as a WAN link would), writes with
// pgbench and checks roles, timelines and lag, then that lag falls to
// zero when the writes stop.
func TestStatusMasterLocalGeo(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	if err := m.Pgbench(context.Background(), "-i", "-s", "1", "-q"); err != nil {
		t.Fatal(err)
	}
	local := m.NewStandby(t, "pbx-a2")
	geo := m.NewStandby(t, "pbx-b1", pgtest.AsGeo(), pgtest.Setting("recovery_min_apply_delay", "1500ms"))

	ms := status(t, m)
	if ms.Role != pg.RoleMaster || ms.Timeline != 1 {
		t.Fatalf("master: role %s timeline %d, want master on timeline 1", ms.Role, ms.Timeline)
	}
	for _, sb := range []*pgtest.Server{local, geo} {
		st := status(t, sb)
		if st.Role != pg.RoleStandby || st.Timeline != 1 || st.SystemID != ms.SystemID {
			t.Fatalf("%s: role %s timeline %d system %s, want standby on timeline 1 of system %s",
				sb.Name, st.Role, st.Timeline, st.SystemID, ms.SystemID)
		}
	}
	pgtest.Eventually(t, 20*time.Second, func() (bool, string) {
		ms := status(t, m)
		for _, n := range []string{"pbx-a2", "pbx-b1"} {
			if r, ok := ms.StandbyNamed(n); !ok || r.State != "streaming" {
				return false, n + " not streaming in pg_stat_replication"
			}
		}
		return true, ""
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bench := make(chan error, 1)
	go func() { bench <- m.Pgbench(ctx, "-T", "4", "-c", "2", "-j", "1") }()

	sawGeoLag, sawLocalStream := false, false
	samples := 0
	for running := true; running; {
		select {
		case err := <-bench:
			if err != nil {
				t.Fatal(err)
			}
			running = false
			continue
		case <-time.After(200 * time.Millisecond):
		}
		ms := status(t, m)
		gs := status(t, geo)
		samples++
		for _, r := range ms.Standbys {
			want := ms.CurrentLSN.Sub(r.ReplayLSN)
			if r.LagBytes != want || r.LagBytes < 0 {
				t.Fatalf("%s lag %d bytes, want current %s - replay %s = %d", r.ApplicationName, r.LagBytes, ms.CurrentLSN, r.ReplayLSN, want)
			}
			if r.ApplicationName == "pbx-b1" && r.LagBytes > 0 {
				sawGeoLag = true
			}
			if r.ApplicationName == "pbx-a2" && r.State == "streaming" {
				sawLocalStream = true
			}
		}
		if gs.Receiver == nil || gs.Receiver.Timeline != 1 {
			t.Fatalf("geo standby's receiver: %+v, want one on timeline 1", gs.Receiver)
		}
		db := gs.Database(pg.View{Node: "pbx-b1", Geo: true, Master: ms, MasterNode: "pbx-a1"})
		if db.Role != "geo-standby" || db.Timeline != 1 || db.Upstream != "pbx-a1" || !db.Streaming {
			t.Fatalf("geo standby as protocol.Database: %+v", db)
		}
	}
	if samples < 3 {
		t.Fatalf("only %d samples while pgbench ran", samples)
	}
	if !sawGeoLag {
		t.Error("the delayed geo standby never showed lag while the master took writes")
	}
	if !sawLocalStream {
		t.Error("the local standby was never streaming while the master took writes")
	}

	// Writes stopped: every lag reaches zero, seen from both sides.
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		ms := status(t, m)
		if len(ms.Standbys) != 2 {
			return false, fmt.Sprintf("%d standbys listed", len(ms.Standbys))
		}
		for _, r := range ms.Standbys {
			if r.LagBytes != 0 {
				return false, fmt.Sprintf("%s still %d bytes behind", r.ApplicationName, r.LagBytes)
			}
		}
		for _, sb := range []*pgtest.Server{local, geo} {
			st := status(t, sb)
			d := st.Database(pg.View{Node: sb.Name, Geo: sb.Geo, Master: ms})
			if d.LagBytes != 0 {
				return false, fmt.Sprintf("%s reports %d bytes of lag", sb.Name, d.LagBytes)
			}
			if st.ReplayLSN != ms.CurrentLSN {
				return false, fmt.Sprintf("%s replayed %s, master at %s", sb.Name, st.ReplayLSN, ms.CurrentLSN)
			}
		}
		return true, ""
	})

	md := status(t, m).Database(pg.View{Node: "pbx-a1"})
	if md.Role != "master" || md.Timeline != 1 || md.LagBytes != 0 || md.LagSeconds != nil {
		t.Errorf("master as protocol.Database: %+v", md)
	}
	// Slots: one per standby, both active.
	slots := map[string]bool{}
	for _, sl := range status(t, m).Slots {
		slots[sl.Name] = sl.Active
	}
	if !slots["pbx_a2"] || !slots["pbx_b1"] {
		t.Errorf("slots on the master: %v, want pbx_a2 and pbx_b1 active", slots)
	}
}
