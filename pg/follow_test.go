package pg_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/pgtest"
)

// listed waits until the master lists a streaming standby named app.
func listed(t *testing.T, m *pgtest.Server, app string) {
	t.Helper()
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		ms := status(t, m)
		r, ok := ms.StandbyNamed(app)
		return ok && r.State == "streaming", fmt.Sprintf("%s lists %+v", m.Name, ms.Standbys)
	})
}

// assess reads how standby sb follows master m, as the agent would.
func assess(t *testing.T, sb, m *pgtest.Server) pg.Follow {
	t.Helper()
	f, err := sb.Instance().Assess(ctxT(t, time.Minute), status(t, sb), m.Peer(), pg.PollPeers(ctxT(t, time.Minute), []pg.Peer{m.Peer()}))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestAdoptPlainStandby adopts a standby made the usual way (pg_basebackup
// -R: no application_name, no slot): it is recognised as streaming, then
// set to the node's name and slot with no copy and no restart.
func TestAdoptPlainStandby(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	sb := m.NewStandby(t, "pbx-a2", pgtest.Plain())
	listed(t, m, "walreceiver")

	f := assess(t, sb, m)
	if !f.Streams() || f.AppName != "walreceiver" || f.Slot != "" || f.Cannot != nil || !strings.Contains(f.MatchedBy, "client address") {
		t.Fatalf("assessment of a plain standby: %+v, want streaming as walreceiver without a slot, matched by address", f)
	}
	if f.Adopted("pbx-a2", pg.SlotName("pbx-a2")) {
		t.Fatal("a plain standby counts as adopted")
	}
	ino, started := inodeOf(t, sb.DataDir), sb.StartTime(t)
	in := sb.Instance()
	res, err := in.Adopt(ctxT(t, 2*time.Minute), m.Peer(), pg.AdoptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("adopted: %s", res)
	for _, want := range []string{`created replication slot "pbx_a2" on pbx-a1`, "application_name walreceiver (none set) → pbx-a2", "slot none → pbx_a2", "no restart"} {
		if !strings.Contains(res.String(), want) {
			t.Errorf("adoption says %q, want it to say %q", res, want)
		}
	}
	streams(t, sb, m)
	st := status(t, sb)
	if st.Receiver.SlotName != "pbx_a2" {
		t.Errorf("receiver slot %q, want pbx_a2", st.Receiver.SlotName)
	}
	if !slotActive(t, m, "pbx_a2") {
		t.Error("slot pbx_a2 is not active on the master")
	}
	if inodeOf(t, sb.DataDir) != ino || !sb.StartTime(t).Equal(started) {
		t.Error("the adoption replaced the data directory or restarted the server")
	}
	if f := assess(t, sb, m); !f.Adopted("pbx-a2", "pbx_a2") {
		t.Errorf("after the adoption: %+v", f)
	}
	res, err = in.Adopt(ctxT(t, time.Minute), m.Peer(), pg.AdoptOptions{})
	if err != nil || len(res.Changes) != 0 {
		t.Errorf("adopting again: %v %v, want nothing to change", res, err)
	}
	m.Exec(t, "CREATE TABLE after_adoption (id int); INSERT INTO after_adoption VALUES (1)")
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		db := sb.DB(t)
		var n int
		err := db.QueryRow("SELECT count(*) FROM after_adoption").Scan(&n)
		return err == nil && n == 1, fmt.Sprintf("%d rows, %v", n, err)
	})
}

// renamed makes a standby that streams as "old-name" with slot old_name,
// and the instance of node pbx-a2 over it.
func renamed(t *testing.T) (*pgtest.Server, *pgtest.Server, *pg.Instance) {
	t.Helper()
	m := pgtest.NewMaster(t, "pbx-a1")
	sb := m.NewStandby(t, "old-name")
	streams(t, sb, m)
	in := sb.Instance()
	in.Node = "pbx-a2"
	return m, sb, in
}

// TestAdoptRenames adopts a standby that streams under another node's
// name and slot: it takes the node's, and the slot it used before is
// dropped so that it keeps no WAL.
func TestAdoptRenames(t *testing.T) {
	m, _, in := renamed(t)
	res, err := in.Adopt(ctxT(t, 2*time.Minute), m.Peer(), pg.AdoptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.String(), `dropped replication slot "old_name"`) {
		t.Errorf("adoption says %q, want the old slot dropped", res)
	}
	listed(t, m, "pbx-a2")
	if slotExists(t, m, "old_name") || !slotActive(t, m, "pbx_a2") {
		t.Error("want slot old_name gone and pbx_a2 active")
	}
}

// TestAdoptRollsBack gives the receiver no time to stream again: every
// change is undone and the standby streams as before.
func TestAdoptRollsBack(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	sb := m.NewStandby(t, "pbx-a2", pgtest.Plain())
	listed(t, m, "walreceiver")
	_, err := sb.Instance().Adopt(ctxT(t, 2*time.Minute), m.Peer(), pg.AdoptOptions{Wait: time.Nanosecond})
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("adoption with no time to stream: %v, want it rolled back", err)
	}
	if slotExists(t, m, "pbx_a2") {
		t.Error("the slot the adoption created is still on the master")
	}
	listed(t, m, "walreceiver")
	st := status(t, sb)
	if st.Receiver == nil || st.Receiver.SlotName != "" {
		t.Errorf("receiver after the roll back: %+v", st.Receiver)
	}
	if left := siblings(t, sb); len(left) != 0 {
		t.Errorf("left beside the data directory: %v", left)
	}
}

// TestAdoptInterrupted stops an adoption right after the new settings
// are set, as a killed agent would: RecoverAdopt finds the standby
// streaming under them and completes it.
func TestAdoptInterrupted(t *testing.T) {
	m, sb, in := renamed(t)
	restore := pg.SetAdoptHook(func() { panic("killed") })
	func() {
		defer func() { _ = recover() }()
		_, _ = in.Adopt(ctxT(t, time.Minute), m.Peer(), pg.AdoptOptions{})
	}()
	restore()
	if left := siblings(t, sb); len(left) != 1 || left[0] != "data.adopt.json" {
		t.Fatalf("after the kill: %v, want the adoption record", left)
	}
	if _, err := in.Adopt(ctxT(t, time.Minute), m.Peer(), pg.AdoptOptions{}); pg.RefusalReason(err) != pg.ReasonInterrupted {
		t.Errorf("adopting over an interrupted adoption: %v, want refused", err)
	}
	msg, err := in.RecoverAdopt(ctxT(t, time.Minute), []pg.Peer{m.Peer()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "it is complete") || !strings.Contains(msg, `dropped replication slot "old_name"`) {
		t.Errorf("recovery says %q", msg)
	}
	listed(t, m, "pbx-a2")
	if left := siblings(t, sb); len(left) != 0 {
		t.Errorf("left beside the data directory: %v", left)
	}
}

// TestFollowCannot checks the evidence a re-seed may start on by itself:
// another system, a history that went past the master's fork, data
// ahead of the master, and no data at all.
func TestFollowCannot(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	a := m.NewStandby(t, "pbx-a2")
	b := m.NewStandby(t, "pbx-a3")
	other := pgtest.NewMaster(t, "pbx-x1", pgtest.FreshCluster())
	streams(t, a, m)
	streams(t, b, m)

	f := assess(t, a, other)
	if f.Cannot == nil || f.Cannot.Reason != pg.CannotOtherSystem || !f.Cannot.Automatic {
		t.Errorf("standby of another system: %+v", f.Cannot)
	}
	if f := assess(t, a, m); f.Cannot != nil || !f.Streams() || f.CatchingUp {
		t.Errorf("healthy standby: %+v", f)
	}

	// pbx-a2 is promoted; pbx-a3 goes on following pbx-a1, past the fork.
	a.Exec(t, "SELECT pg_promote(true, 60)")
	m.Exec(t, "CREATE TABLE after_fork (id int); INSERT INTO after_fork SELECT generate_series(1, 1000)")
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		return b.QueryInt(t, "SELECT count(*) FROM pg_class WHERE relname = 'after_fork'") == 1, "pbx-a3 has not replayed the table"
	})
	hist, err := pg.ReadHistory(ctxT(t, time.Minute), a.ConnInfo(), 2)
	if err != nil || len(hist) != 1 || hist[0].Timeline != 1 {
		t.Fatalf("history of timeline 2: %+v %v", hist, err)
	}
	f = assess(t, b, a)
	if f.Cannot == nil || f.Cannot.Reason != pg.CannotHistory || !f.Cannot.Automatic || !strings.Contains(f.Cannot.Why, "past the fork") {
		t.Errorf("standby past the fork: %+v", f.Cannot)
	}

	// pbx-a2, stopped on timeline 2, against pbx-a1 still on 1: ahead,
	// never re-seeded without an operator.
	a.Stop(t)
	c, _, err := a.Instance().AssessStopped(ctxT(t, time.Minute), m.Peer(), status(t, m))
	if err != nil || c == nil || c.Reason != pg.CannotAhead || c.Automatic {
		t.Errorf("promoted data against the old master: %+v %v, want ahead, not automatic", c, err)
	}

	gone := a.Instance()
	gone.DataDir = a.Dir + "/nothing-here"
	c, _, err = gone.AssessStopped(ctxT(t, time.Minute), m.Peer(), status(t, m))
	if err != nil || c == nil || c.Reason != pg.CannotNoData || !c.Automatic {
		t.Errorf("no data directory: %+v %v", c, err)
	}
}

// TestFollowedPromotion is a standby that followed a promotion onto the
// new timeline, its WAL receiver then stopped: its status pairs the
// timeline of its last restartpoint (the old one) with a position past the
// fork, which alone would look like a standby that went on past it. It
// must not be judged unable to stream.
func TestFollowedPromotion(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	a := m.NewStandby(t, "pbx-a2")
	c := m.NewStandby(t, "pbx-a3")
	streams(t, a, m)
	streams(t, c, m)
	m.Stop(t)
	a.Exec(t, "SELECT pg_promote(true, 60)")
	a.Exec(t, "SELECT pg_create_physical_replication_slot('pbx_a3', true)")
	c.Exec(t, "ALTER SYSTEM SET primary_conninfo = '"+strings.ReplaceAll(a.ConnInfo(), "sslmode=disable", "")+" application_name=pbx-a3'")
	c.Exec(t, "SELECT pg_reload_conf()")
	a.Exec(t, "CREATE TABLE after_promotion (id int); INSERT INTO after_promotion SELECT generate_series(1, 1000)")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(c.DataDir + ".log")
			t.Logf("log of pbx-a3:\n%s", b)
		}
	})
	streams(t, c, a)
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		return c.QueryInt(t, "SELECT count(*) FROM pg_class WHERE relname = 'after_promotion'") == 1, "not replayed yet"
	})
	c.Exec(t, "ALTER SYSTEM SET primary_conninfo = ''")
	c.Exec(t, "SELECT pg_reload_conf()")
	var st *pg.Status
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		st = status(t, c)
		return st.Receiver == nil, "the WAL receiver still runs"
	})
	if st.Timeline != 1 {
		t.Skipf("pbx-a3 made a restartpoint on timeline %d already: the case does not arise", st.Timeline)
	}
	f := assess(t, c, a)
	if f.Cannot != nil {
		t.Fatalf("a standby that followed the promotion is judged unable to stream: %+v", f.Cannot)
	}
	if f.Streams() || f.Why == "" {
		t.Errorf("its receiver is stopped: %+v", f)
	}
}

// TestReseedSpace re-seeds a standby on a tmpfs: a copy that cannot fit is
// refused before the standby stops; one that fits once the images this
// re-seed rotates out are pruned prunes them first and says so.
func TestReseedSpace(t *testing.T) {
	base := pgtest.Tmpfs(t, 1<<30)
	m := pgtest.NewMaster(t, "pbx-a1")
	m.Fill(t, "pad", 32)
	sb := m.NewStandby(t, "pbx-a2", pgtest.Under(base))
	streams(t, sb, m)
	in := sb.Instance()
	in.KeepImages = 1
	sc, err := in.CheckSpace(ctxT(t, time.Minute), m.Peer(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("estimate: %s", sc)

	used := pgtest.UsedBytes(t, base)
	pgtest.ResizeTmpfs(t, base, used+sc.NeededBytes/2)
	started := sb.StartTime(t)
	_, err = in.Reseed(ctxT(t, time.Minute), pg.ReseedOptions{Peers: []pg.Peer{m.Peer()}})
	var ref *pg.RefusedError
	if !errors.As(err, &ref) || ref.Reason != pg.ReasonNoSpace || !strings.Contains(ref.Message, "needs about") ||
		!strings.Contains(ref.Message, "nothing was stopped") || !strings.Contains(ref.Hint, "larger file system") {
		t.Fatalf("re-seed that cannot fit: %v", err)
	}
	if !sb.StartTime(t).Equal(started) {
		t.Error("the refused re-seed restarted the standby")
	}
	if left := siblings(t, sb); len(left) != 0 {
		t.Errorf("the refusal left %v", left)
	}

	pgtest.ResizeTmpfs(t, base, 1<<30)
	img, err := in.TakeImage(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	imgBytes := duBytes(t, img.Dir)
	used = pgtest.UsedBytes(t, base)
	pgtest.ResizeTmpfs(t, base, used+sc.NeededBytes-imgBytes/2)
	res, err := in.Reseed(ctxT(t, 2*time.Minute), pg.ReseedOptions{Peers: []pg.Peer{m.Peer()}, SpaceSample: -1})
	if err != nil {
		t.Fatalf("re-seed that fits once the old image is pruned: %v", err)
	}
	if len(res.Pruned) != 1 || res.Pruned[0].ID != img.ID {
		t.Errorf("pruned %+v, want image %s", res.Pruned, img.ID)
	}
	streams(t, sb, m)
}

func slotExists(t *testing.T, s *pgtest.Server, slot string) bool {
	t.Helper()
	return s.QueryInt(t, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", slot) == 1
}

func slotActive(t *testing.T, s *pgtest.Server, slot string) bool {
	t.Helper()
	return s.QueryInt(t, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active", slot) == 1
}

// duBytes is what du says a directory takes.
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
