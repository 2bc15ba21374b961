package health

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// startPostgres runs a throw-away PostgreSQL 15 listening only on a Unix
// socket in a temporary directory, as the postgres user (the server
// refuses to run as root), and returns a DSN for it and a stop function.
func startPostgres(t *testing.T) (dsn string, stop func()) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("PostgreSQL 15 not installed (apt-get install postgresql-15)")
		}
		t.Fatal("PostgreSQL 15 not installed: CI must apt-get install postgresql-15")
	}
	u, err := user.Lookup("postgres")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "" {
			t.Skip("needs root and a postgres user to run PostgreSQL")
		}
		t.Fatalf("needs root and a postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	base, err := os.MkdirTemp("", "hatui-health-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	data, sock := filepath.Join(base, "data"), filepath.Join(base, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(pgBin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = base
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
		return cmd
	}
	if out, err := asPostgres("initdb", "-D", data, "--auth=trust", "--no-sync", "-U", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -c fsync=off", sock)
	if out, err := asPostgres("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(data, "log"), "-w", "-t", "30", "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			asPostgres("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run()
		}
	}
	t.Cleanup(stop)
	return fmt.Sprintf("host=%s user=postgres dbname=postgres sslmode=disable", sock), stop
}

// TestSQLCheckAgainstPostgres runs the sql check against a real server.
func TestSQLCheckAgainstPostgres(t *testing.T) {
	dsn, stop := startPostgres(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		params map[string]string
		ok     bool
		want   string
	}{
		{map[string]string{"dsn": dsn}, true, "1 in "},
		{map[string]string{"dsn": dsn, "query": "SELECT pg_is_in_recovery()", "expect": "false"}, true, "false"},
		{map[string]string{"dsn": dsn, "query": "SELECT 'standby'", "expect": "primary"}, false, `returned "standby"; expected "primary"`},
		{map[string]string{"dsn": dsn, "query": "SELECT 1 WHERE false", "expect": "1"}, false, "no rows"},
		{map[string]string{"dsn": dsn, "query": "SELECT * FROM no_such_table"}, false, "no_such_table"},
	} {
		out, err := mustCheck(t, spec("db", "sql", tc.params)).Probe(ctx)
		got := out
		if err != nil {
			got = err.Error()
		}
		if (err == nil) != tc.ok || !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %q (err %v), want ok=%v containing %q", tc.params["query"], got, err, tc.ok, tc.want)
		}
	}

	// A query that does not answer within the timeout fails as a timeout.
	slow := spec("slow", "sql", map[string]string{"dsn": dsn, "query": "SELECT pg_sleep(30)"})
	slow.Timeout = 300 * time.Millisecond
	if _, err := mustCheck(t, slow).Probe(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow query = %v, want ErrTimeout", err)
	}

	// A stopped server fails the check.
	c := mustCheck(t, spec("db", "sql", map[string]string{"dsn": dsn}))
	stop()
	if _, err := c.Probe(ctx); err == nil {
		t.Fatal("probe of a stopped server succeeded")
	}
}
