package database_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/pg/pgtest"
	"github.com/hatui/hatui/protocol"
)

// benchMB is the size of the table copied, from HATUI_PG_BENCH_MB
// (default 16: small, so the benchmark runs anywhere).
func benchMB(b *testing.B) int {
	if s := os.Getenv("HATUI_PG_BENCH_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("HATUI_PG_BENCH_MB=%q: want a positive number of megabytes", s)
		}
		return n
	}
	return 16
}

// asPostgres runs a PostgreSQL program as the postgres user when root.
func asPostgres(ctx context.Context, b *testing.B, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(pgtest.BinDir(), program), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			b.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}}
		cmd.Dir = "/"
	}
	return cmd
}

// BenchmarkReseedThroughAgent compares "reseed NODE" sent to another
// node's agent (forwarding, checks, stop, copy, swap, start, wait for
// streaming, journal, progress to every watcher) with a plain
// pg_basebackup of the same master, and reports the ratio:
//
//	HATUI_PG_BENCH_MB=1024 go test -run '^$' -bench ReseedThroughAgent -benchtime 3x ./agent/database
func BenchmarkReseedThroughAgent(b *testing.B) {
	pgtest.Require(b)
	m := pgtest.NewMaster(b, "bm")
	m.Fill(b, "cdr", benchMB(b))
	s := m.NewStandby(b, "bs")
	nodes := startAgents(b, m, s)
	conn := connect(b, nodes[0])
	waitDB(b, conn, 30*time.Second, "bs streaming", func(d map[string]protocol.Database) (bool, string) {
		return d["bs"].Streaming, fmt.Sprintf("bs %+v", d["bs"])
	})
	size := m.QueryInt(b, "SELECT pg_database_size('postgres')")
	b.SetBytes(size)
	var plain, viaAgent time.Duration
	// Each timed run starts with the page cache written back (sync), and
	// the two alternate in order, so that neither pays for the other's
	// 1 GB of dirty pages or for a cold cache.
	runPlain := func(i int) {
		dir := filepath.Join(m.Dir, fmt.Sprintf("plain-%d", i))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		// Like for like: the re-seed stops the standby before it copies,
		// so the plain copy runs with the standby stopped too (it would
		// otherwise compete for the disk while it replays).
		s.Stop(b)
		syscall.Sync()
		start := time.Now()
		out, err := asPostgres(ctx, b, "pg_basebackup", "-d", m.ConnInfo(), "-D", dir, "-X", "stream", "-c", "fast").CombinedOutput()
		plain += time.Since(start)
		if err != nil {
			b.Fatalf("pg_basebackup: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
		s.Start(b)
		waitDB(b, conn, 60*time.Second, "bs streaming again", func(d map[string]protocol.Database) (bool, string) {
			return d["bs"].Streaming, fmt.Sprintf("bs %+v", d["bs"])
		})
	}
	runAgent := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		syscall.Sync()
		start := time.Now()
		res, err := conn.Do(ctx, protocol.Action{Verb: "reseed", Args: []string{"bs"}}, nil)
		viaAgent += time.Since(start)
		if err != nil || !res.OK {
			b.Fatalf("reseed bs: %+v %v", res, err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			runPlain(i)
			runAgent()
		} else {
			runAgent()
			runPlain(i)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(plain.Milliseconds())/float64(b.N), "basebackup-ms/op")
	b.ReportMetric(float64(viaAgent.Milliseconds())/float64(b.N), "agent-ms/op")
	b.ReportMetric(float64(viaAgent)/float64(plain), "ratio")
}
