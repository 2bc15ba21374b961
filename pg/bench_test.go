package pg_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/internal/runas"
	"github.com/hatui/hatui/pg/pgtest"
)

// benchMB is the size of the table the benchmark copies, from
// HATUI_PG_BENCH_MB (default 64; the release check uses 1024).
func benchMB(b *testing.B) int {
	if s := os.Getenv("HATUI_PG_BENCH_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("HATUI_PG_BENCH_MB=%q: want a positive number of megabytes", s)
		}
		return n
	}
	return 64
}

// BenchmarkReseed compares a full re-seed (checks, stop, copy, swap,
// start, wait for streaming, journal) with a plain pg_basebackup of the
// same master, so the cost of the safety around the copy is visible:
//
//	HATUI_PG_BENCH_MB=1024 go test -run '^$' -bench Reseed -benchtime 3x ./pg
func BenchmarkReseed(b *testing.B) {
	m := pgtest.NewMaster(b, "bench-m")
	m.Fill(b, "cdr", benchMB(b))
	size := m.QueryInt(b, "SELECT pg_database_size('postgres')")

	b.Run("pg_basebackup", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			dir := filepath.Join(m.Dir, fmt.Sprintf("plain-%d", i))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			cmd, err := runas.Command(ctx, "postgres", filepath.Join(pgtest.BinDir(), "pg_basebackup"),
				"-d", m.ConnInfo(), "-D", dir, "-X", "stream", "-c", "fast")
			if err != nil {
				b.Fatal(err)
			}
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				b.Fatalf("pg_basebackup: %v\n%s", err, out)
			}
			b.StopTimer()
			os.RemoveAll(dir)
			b.StartTimer()
		}
	})

	sb := m.NewStandby(b, "bench-s")
	in := sb.Instance()
	in.KeepImages = 1
	b.Run("reseed", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			_, err := in.Reseed(ctx, pg.ReseedOptions{Peers: []pg.Peer{m.Peer()}})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
