package database_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/pgtest"
	"github.com/hatui/hatui/protocol"
)

// TestAgentsWithDatabases runs three agents over a master, a local
// standby and a geo standby, and drives them through another agent.
func TestAgentsWithDatabases(t *testing.T) {
	pgtest.Require(t)
	m := pgtest.NewMaster(t, "dbm")
	s := m.NewStandby(t, "dbs")
	g := m.NewStandby(t, "dbg", pgtest.AsGeo())
	nodes := startAgents(t, m, s, g)
	viaG := connect(t, nodes[2])

	m.Exec(t, "CREATE TABLE calls (id int); INSERT INTO calls SELECT generate_series(1, 1000)")
	masterLSN := ""
	dbs := waitDB(t, viaG, 30*time.Second, "roles through dbg's agent", func(d map[string]protocol.Database) (bool, string) {
		md, sd, gd := d["dbm"], d["dbs"], d["dbg"]
		masterLSN = md.LSN
		switch {
		case md.Role != "master" || md.Timeline != 1 || !md.Healthy:
			return false, fmt.Sprintf("dbm %+v", md)
		case sd.Role != "standby" || !sd.Streaming || sd.Upstream != "dbm" || sd.Timeline != 1 || sd.Slot != pg.SlotName("dbs"):
			return false, fmt.Sprintf("dbs %+v", sd)
		case gd.Role != "geo-standby" || !gd.Streaming || gd.Timeline != 1:
			return false, fmt.Sprintf("dbg %+v", gd)
		case sd.LSN != md.LSN || sd.LagBytes != 0:
			return false, fmt.Sprintf("dbs not caught up: %s vs %s, lag %d", sd.LSN, md.LSN, sd.LagBytes)
		}
		return true, ""
	})
	if dbs["dbm"].SystemID == "" || dbs["dbm"].SystemID != dbs["dbs"].SystemID {
		t.Errorf("system identifiers: %q %q", dbs["dbm"].SystemID, dbs["dbs"].SystemID)
	}
	if masterLSN == "" || masterLSN == "0/0" {
		t.Errorf("master LSN %q", masterLSN)
	}

	t.Run("refusals", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, tc := range []struct {
			act      protocol.Action
			code     protocol.Code
			msg, hnt string
		}{
			{protocol.Action{Verb: "reseed", Args: []string{"dbm"}}, protocol.CodeRefused, "running master", "switch the master role"},
			{protocol.Action{Verb: "promote", Args: []string{"dbg"}}, protocol.CodeRefused, "geo standby", "with force"},
			{protocol.Action{Verb: "promote", Args: []string{"dbs"}}, protocol.CodeRefused, "dbm still runs as master", "fence or stop the old master"},
			{protocol.Action{Verb: "promote", Args: []string{"dbm"}}, protocol.CodeRefused, "already a master", "nothing to do"},
			{protocol.Action{Verb: "reseed"}, protocol.CodeUsage, "needs a node name", ""},
		} {
			_, err := viaG.Do(ctx, tc.act, nil)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != tc.code || !strings.Contains(pe.Message, tc.msg) || !strings.Contains(pe.Hint, tc.hnt) {
				t.Errorf("%s: got %v (%#v), want %s containing %q with hint %q", tc.act, err, pe, tc.code, tc.msg, tc.hnt)
			}
		}
	})

	t.Run("reseed", func(t *testing.T) {
		viaM := connect(t, nodes[0])
		w := watch(t, viaG) // another console, watching from another agent
		before, err := s.Instance().Images().List()
		if err != nil {
			t.Fatal(err)
		}
		// Writes during the copy: the new standby must end up with them.
		db := m.DB(t)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				// Errors are not the test's subject: the row counts are.
				_, _ = db.Exec("INSERT INTO calls VALUES ($1)", 5000+i)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var mu sync.Mutex
		var steps []protocol.Progress
		res, err := viaM.Do(ctx, protocol.Action{Verb: "reseed", Args: []string{"dbs"}}, func(p protocol.Progress) {
			mu.Lock()
			steps = append(steps, p)
			mu.Unlock()
		})
		close(stop)
		wg.Wait()
		if err != nil || !res.OK {
			t.Fatalf("reseed dbs via dbm: %+v %v", res, err)
		}
		mu.Lock()
		copied := false
		for _, p := range steps {
			copied = copied || p.Step == "copy"
		}
		mu.Unlock()
		if !copied {
			t.Errorf("progress on the action: %+v, want a copy step", steps)
		}
		pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
			seen := w.reseedOf("dbs")
			return len(seen) > 0, "the watcher at dbg saw no Database.Reseed for dbs"
		})
		after, err := s.Instance().Images().List()
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before)+1 || after[len(after)-1].Kind != pg.ImagePrevious {
			t.Errorf("images before %v, after %v: want the old data directory as a new %q image", before, after, pg.ImagePrevious)
		}
		if !strings.Contains(res.Message, "fallback image") {
			t.Errorf("result %q does not name the fallback image", res.Message)
		}
		rows := m.QueryInt(t, "SELECT count(*) FROM calls")
		waitDB(t, viaG, 30*time.Second, "dbs streaming after the re-seed", func(d map[string]protocol.Database) (bool, string) {
			sd := d["dbs"]
			return sd.Role == "standby" && sd.Streaming && sd.Timeline == d["dbm"].Timeline && sd.Reseed == nil,
				fmt.Sprintf("dbs %+v", sd)
		})
		pgtest.Eventually(t, 10*time.Second, func() (bool, string) {
			n := s.QueryInt(t, "SELECT count(*) FROM calls")
			return n >= rows, fmt.Sprintf("standby has %d rows, master had %d", n, rows)
		})
	})

	t.Run("promote", func(t *testing.T) {
		m.Stop(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := viaG.Do(ctx, protocol.Action{Verb: "promote", Args: []string{"dbs"}}, nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeRefused || !strings.Contains(pe.Message, "dbm cannot be reached") || !strings.Contains(pe.Hint, "fence") {
			t.Fatalf("promote dbs with dbm unreachable: got %v, want refused: not known to be fenced", err)
		}
		res, err := viaG.Do(ctx, protocol.Action{Verb: "promote", Args: []string{"dbs"}, Force: true}, nil)
		if err != nil || !res.OK || !strings.Contains(res.Message, "timeline 2") {
			t.Fatalf("promote dbs with force: %+v %v", res, err)
		}
		waitDB(t, viaG, 30*time.Second, "dbs master on timeline 2", func(d map[string]protocol.Database) (bool, string) {
			return d["dbs"].Role == "master" && d["dbs"].Timeline == 2 && d["dbm"].Role == "down", fmt.Sprintf("dbs %+v, dbm %+v", d["dbs"], d["dbm"])
		})
	})
}

// TestAgentKilledMidReseed kills the standby's agent (a separate process)
// while it copies, starts it again, and expects it to say what happened
// and what it will do, then to do it.
func TestAgentKilledMidReseed(t *testing.T) {
	pgtest.Require(t)
	m := pgtest.NewMaster(t, "km")
	s := m.NewStandby(t, "ks")
	m.Fill(t, "pad", 16)
	mn := nodeConfig(t, m, "a", nil, []*pgtest.Server{s}, "")
	mn.start(t)
	// A slow copy, so the kill lands in the middle of it.
	sn := nodeConfig(t, s, "a", []string{mn.cfg.Gossip.Bind}, []*pgtest.Server{m}, `max_rate = "1M"`)
	sn.startProcess(t)
	viaM := connect(t, mn)
	waitDB(t, viaM, 30*time.Second, "ks streaming", func(d map[string]protocol.Database) (bool, string) {
		return d["ks"].Streaming, fmt.Sprintf("ks %+v", d["ks"])
	})
	w := watch(t, viaM)
	go func() {
		_, _ = viaM.Do(context.Background(), protocol.Action{Verb: "reseed", Args: []string{"ks"}}, nil)
	}()
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, p := range w.reseedOf("ks") {
			if p.Step == "copy" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no copy step seen: %+v", w.reseedOf("ks"))
	})
	if err := sn.proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sn.proc.Wait()

	sn.start(t) // the same configuration, in this process now
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		evs, _ := sn.a.EventsSince(0)
		for _, e := range evs {
			if e.Kind == "database" && strings.Contains(e.Message, "re-seed of ks") &&
				strings.Contains(e.Message, "interrupted while copying") && strings.Contains(e.Message, "Will roll back") {
				t.Logf("after the restart: %s", e.Message)
				return true, ""
			}
		}
		return false, fmt.Sprintf("no recovery event in %+v", evs)
	})
	pgtest.Eventually(t, 60*time.Second, func() (bool, string) {
		evs, _ := sn.a.EventsSince(0)
		for _, e := range evs {
			if strings.Contains(e.Message, "recovery done") {
				return true, ""
			}
		}
		return false, "recovery not done"
	})
	waitDB(t, viaM, 60*time.Second, "ks streaming again after the recovery", func(d map[string]protocol.Database) (bool, string) {
		return d["ks"].Streaming && d["ks"].Timeline == d["km"].Timeline, fmt.Sprintf("ks %+v", d["ks"])
	})
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".new") || strings.HasSuffix(e.Name(), ".journal.json") {
			t.Errorf("left beside the data directory after the roll-back: %s", e.Name())
		}
	}
}

// TestColdStartWaitsForMaster starts a standby's agent while no master
// runs: it says it waits and touches nothing; once the master is up, the
// monitor starts the standby and it streams.
func TestColdStartWaitsForMaster(t *testing.T) {
	pgtest.Require(t)
	m := pgtest.NewMaster(t, "cm")
	s := m.NewStandby(t, "cs")
	s.Stop(t)
	m.Stop(t)
	sums := pgtest.Checksums(t, s.DataDir)
	sn := nodeConfig(t, s, "a", nil, []*pgtest.Server{m}, "standby = true")
	sn.start(t)
	conn := connect(t, sn)
	pgtest.Eventually(t, 30*time.Second, func() (bool, string) {
		evs, _ := sn.a.EventsSince(0)
		for _, e := range evs {
			if strings.Contains(e.Message, "waiting for a master") && strings.Contains(e.Message, "untouched") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no waiting event in %+v", evs)
	})
	waitDB(t, conn, 10*time.Second, "cs shown waiting", func(d map[string]protocol.Database) (bool, string) {
		return d["cs"].Role == "down" && strings.Contains(d["cs"].Health, "waiting for a master"), fmt.Sprintf("cs %+v", d["cs"])
	})
	if diff := pgtest.DiffChecksums(sums, pgtest.Checksums(t, s.DataDir)); len(diff) > 0 {
		t.Fatalf("the waiting standby's data directory changed: %v", diff)
	}
	m.Start(t)
	waitDB(t, conn, 60*time.Second, "cs streaming once the master is up", func(d map[string]protocol.Database) (bool, string) {
		return d["cs"].Role == "standby" && d["cs"].Streaming, fmt.Sprintf("cs %+v", d["cs"])
	})
}
