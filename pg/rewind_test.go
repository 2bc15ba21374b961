package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/pgtest"
)

// TestRewindFormerMaster: a master cut off after its standby was promoted
// keeps writing; pg_rewind makes it a standby of the new master, copies
// its old data aside first, and reports the range only it held. Rows of
// the new master reach it; its own rows after the fork are gone from the
// live data but kept in the image.
func TestRewindFormerMaster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := pgtest.NewMaster(t, "rw-a", pgtest.Setting("wal_log_hints", "on"))
	a.Exec(t, "CREATE TABLE t (id int PRIMARY KEY, side text)")
	a.Exec(t, "INSERT INTO t SELECT g, 'both' FROM generate_series(1, 100) g")
	b := a.NewStandby(t, "rw-b")
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		return b.QueryInt(t, "SELECT count(*) FROM t") == 100, "standby has the first rows"
	})
	if _, err := b.Instance().Promote(ctx, pg.PromoteRequest{OldMasterGone: true}); err != nil {
		t.Fatal(err)
	}
	// Split brain in miniature: both write now.
	b.Exec(t, "INSERT INTO t SELECT g, 'new master' FROM generate_series(101, 150) g")
	a.Exec(t, "INSERT INTO t SELECT g, 'cut off' FROM generate_series(1001, 1200) g")
	a.Exec(t, "CHECKPOINT")
	a.Stop(t)

	in := a.Instance()
	res, err := in.Rewind(ctx, b.Peer())
	if err != nil {
		t.Fatal(err)
	}
	if res.LostBytes <= 0 || res.DivergedAt == 0 || res.OldEnd <= res.DivergedAt {
		t.Fatalf("the range only the former master held is not reported: %+v", res)
	}
	if res.Image == nil {
		t.Fatal("no copy of the former master's data was kept")
	}
	imgs, err := in.Images().List()
	if err != nil || len(imgs) != 1 || imgs[0].ID != res.Image.ID || imgs[0].LSN != res.OldEnd {
		t.Fatalf("image store: %+v %v, want the copy at %s", imgs, err, res.OldEnd)
	}
	t.Logf("rewind: %s in %s", res.Lost(), res.Took)
	a.Start(t)
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := a.QueryInt(t, "SELECT count(*) FROM t WHERE id BETWEEN 101 AND 150")
		return n == 50, "the new master's rows reach the rewound node"
	})
	if n := a.QueryInt(t, "SELECT count(*) FROM t WHERE side = 'cut off'"); n != 0 {
		t.Errorf("%d rows only the former master had are still live after the rewind", n)
	}
	st, err := in.Status(ctx)
	if err != nil || st.Role != pg.RoleStandby {
		t.Fatalf("rewound node is not a standby: %+v %v", st, err)
	}
	ms, err := b.Instance().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ms.StandbyNamed("rw-a"); !ok {
		t.Errorf("the new master does not list the rewound node as its standby: %+v", ms.Standbys)
	}
}
