// Package pgtest runs real PostgreSQL clusters for tests: a master and its
// standbys on loopback ports in temporary directories, as the postgres
// user when the test runs as root.
//
// Every server is stopped when its test ends, failed or not (t.Cleanup),
// and also when the test binary dies without cleaning up (killed, or
// timed out): each server has a watchdog shell that holds the read end of
// a pipe from the test process and stops the server when that pipe
// closes.
package pgtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/internal/runas"
	_ "github.com/lib/pq" // the driver the library uses
)

// BinDir holds the PostgreSQL programs; the HATUI_PG_BINDIR environment
// variable overrides it.
func BinDir() string {
	if d := os.Getenv("HATUI_PG_BINDIR"); d != "" {
		return d
	}
	return pg.DefaultBinDir
}

// Available says why PostgreSQL cannot be run here, or nil.
func Available() error {
	for _, p := range []string{"initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_controldata", "pgbench"} {
		if _, err := os.Stat(filepath.Join(BinDir(), p)); err != nil {
			return fmt.Errorf("PostgreSQL program %s missing in %s (apt-get install postgresql-15)", p, BinDir())
		}
	}
	if os.Geteuid() == 0 {
		if _, err := runas.Lookup("postgres"); err != nil {
			return fmt.Errorf("running as root needs a postgres user: %w", err)
		}
	}
	return nil
}

// Require skips the test when PostgreSQL cannot run here, or fails it when
// the CI environment variable is true (CI must not silently skip).
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL needed: %v", err)
		}
		t.Skipf("PostgreSQL needed: %v", err)
	}
}

// Server is one PostgreSQL instance under test.
type Server struct {
	Name    string
	Dir     string // the server's directory: data, log, images, journal
	DataDir string
	Port    int
	Geo     bool

	watchdog   *os.File
	watchCmd   *exec.Cmd
	socketsDir string
}

type config struct {
	settings map[string]string
	durable  bool
	geo      bool
	fresh    bool
	plain    bool
	base     string
}

// Option changes how a server is made.
type Option func(*config)

// Setting adds a postgresql.conf setting.
func Setting(name, value string) Option {
	return func(c *config) { c.settings[name] = value }
}

// Durable keeps fsync on (off by default: tests need speed, not
// durability, unless durability is the point).
func Durable() Option { return func(c *config) { c.durable = true } }

// FreshCluster runs initdb for this master even when a template exists, so
// that it gets a system identifier of its own.
func FreshCluster() Option { return func(c *config) { c.fresh = true } }

// AsGeo marks a standby as a geo standby in its Instance.
func AsGeo() Option { return func(c *config) { c.geo = true } }

// Plain makes a standby the way most sites make one: pg_basebackup -R
// with no application_name and no replication slot, so the master lists
// it as "walreceiver".
func Plain() Option { return func(c *config) { c.plain = true } }

// Under puts the server's directory under base (a tmpfs, say) instead of
// the system's temporary directory.
func Under(base string) Option { return func(c *config) { c.base = base } }

func newConfig(opts []Option) *config {
	c := &config{settings: map[string]string{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// run runs a PostgreSQL program as the server user and fails the test on
// error, showing the program's output.
func run(t testing.TB, program string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, err := runas.Command(ctx, "postgres", filepath.Join(BinDir(), program), args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newServer makes the server's directory, owned by postgres, under base
// ("" for the system's temporary directory).
func newServer(t testing.TB, name, base string) *Server {
	t.Helper()
	dir, err := os.MkdirTemp(base, "hatui-pg-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := runas.Chown(dir, "postgres"); err != nil {
		t.Fatal(err)
	}
	return &Server{Name: name, Dir: dir, DataDir: filepath.Join(dir, "data"), Port: freePort(t), socketsDir: dir}
}

// conf appends settings to the server's postgresql.conf; later lines win,
// so a standby's copy of the master's file gets its own port.
func (s *Server) conf(t testing.TB, c *config) {
	t.Helper()
	lines := []string{
		"",
		"# hatui pgtest",
		fmt.Sprintf("port = %d", s.Port),
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("unix_socket_directories = '%s'", s.socketsDir),
		"shared_buffers = 16MB",
		"max_connections = 40",
		"max_wal_senders = 10",
		"max_replication_slots = 10",
		"wal_keep_size = 256MB",
		"wal_receiver_status_interval = 1s",
		"hot_standby_feedback = on",
		"log_min_messages = warning",
		"log_connections = off",
	}
	if !c.durable {
		lines = append(lines, "fsync = off", "synchronous_commit = off")
	} else {
		lines = append(lines, "fsync = on", "synchronous_commit = on")
	}
	for k, v := range c.settings {
		lines = append(lines, fmt.Sprintf("%s = '%s'", k, strings.ReplaceAll(v, "'", "''")))
	}
	f, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

func initdb(t testing.TB, dir string) {
	t.Helper()
	run(t, "initdb", "-N", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-D", dir)
}

var tpl struct {
	sync.Mutex
	enabled bool
	dir     string // the template's data directory, once made
	base    string
}

// Main runs the tests of a package with a template cluster: initdb runs
// once, and each NewMaster copies the template instead (initdb takes
// seconds on a busy machine). Masters made from the template share a
// system identifier; use FreshCluster for one that must differ. Call it
// from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	tpl.Lock()
	tpl.enabled = true
	tpl.Unlock()
	code := m.Run()
	tpl.Lock()
	if tpl.base != "" {
		os.RemoveAll(tpl.base)
	}
	tpl.Unlock()
	os.Exit(code)
}

// template returns the template data directory, making it on first use,
// or "" when Main is not in use.
func template(t testing.TB) string {
	t.Helper()
	tpl.Lock()
	defer tpl.Unlock()
	if !tpl.enabled {
		return ""
	}
	if tpl.dir != "" {
		return tpl.dir
	}
	base, err := os.MkdirTemp("", "hatui-pgtest-template-")
	if err != nil {
		t.Fatal(err)
	}
	tpl.base = base
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := runas.Chown(base, "postgres"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "data")
	initdb(t, dir)
	tpl.dir = dir
	return dir
}

// NewMaster creates a new database cluster (initdb, so with its own system
// identifier) and starts it.
func NewMaster(t testing.TB, name string, opts ...Option) *Server {
	t.Helper()
	Require(t)
	c := newConfig(opts)
	s := newServer(t, name, c.base)
	s.Geo = c.geo
	if tpl := template(t); tpl != "" && !c.fresh {
		if out, err := exec.Command("cp", "-a", tpl, s.DataDir).CombinedOutput(); err != nil {
			t.Fatalf("copying the template cluster: %v\n%s", err, out)
		}
	} else {
		initdb(t, s.DataDir)
	}
	s.conf(t, c)
	s.guard(t)
	s.Start(t)
	return s
}

// NewStandby copies s with pg_basebackup -R into a new server, with its
// own replication slot named after it (unless Plain), and starts it
// streaming.
func (s *Server) NewStandby(t testing.TB, name string, opts ...Option) *Server {
	t.Helper()
	c := newConfig(opts)
	sb := newServer(t, name, c.base)
	sb.Geo = c.geo
	if err := os.Mkdir(sb.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := runas.Chown(sb.DataDir, "postgres"); err != nil {
		t.Fatal(err)
	}
	if c.plain {
		ci := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres", s.Port)
		run(t, "pg_basebackup", "-d", ci, "-D", sb.DataDir, "-X", "stream", "-R", "-c", "fast", "--no-sync")
	} else {
		ci := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", s.Port, name)
		run(t, "pg_basebackup", "-d", ci, "-D", sb.DataDir, "-X", "stream", "-R", "-S", pg.SlotName(name), "-C", "-c", "fast", "--no-sync")
	}
	sb.conf(t, c)
	sb.guard(t)
	sb.Start(t)
	return sb
}

// guard starts the server's watchdog and registers the cleanup that stops
// the server at the end of the test.
func (s *Server) guard(t testing.TB) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := runas.Command(context.Background(), "postgres", "/bin/sh", "-c",
		`read _ignored; exec "$0" stop -D "$1" -m immediate`, filepath.Join(BinDir(), "pg_ctl"), s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = r
	cmd.SysProcAttr.Setpgid = true // a terminal's ^C must not kill the watchdog before it acts
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the watchdog of %s: %v", s.Name, err)
	}
	r.Close()
	s.watchdog, s.watchCmd = w, cmd
	t.Cleanup(func() {
		s.stop(t, "immediate")
		s.watchdog.Close()
		_ = s.watchCmd.Wait()
	})
}

// ConnInfo is a superuser connection string for the server.
func (s *Server) ConnInfo() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=5", s.Port)
}

// Instance is the server as the library manages it.
func (s *Server) Instance() *pg.Instance {
	return &pg.Instance{Node: s.Name, ConnInfo: s.ConnInfo(), DataDir: s.DataDir, BinDir: BinDir(), Geo: s.Geo}
}

// Peer is the server as another node sees it.
func (s *Server) Peer() pg.Peer {
	return pg.Peer{Node: s.Name, ConnInfo: s.ConnInfo(), Geo: s.Geo}
}

// Start starts the server and waits until it is up.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	run(t, "pg_ctl", "start", "-D", s.DataDir, "-w", "-t", "60", "-l", s.DataDir+".log")
}

// Stop stops the server with a fast shutdown.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop(t, "fast")
}

func (s *Server) stop(t testing.TB, mode string) {
	t.Helper()
	if !s.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, err := runas.Command(ctx, "postgres", filepath.Join(BinDir(), "pg_ctl"), "stop", "-D", s.DataDir, "-m", mode, "-w")
	if err != nil {
		t.Error(err)
		return
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("stopping %s: %v\n%s", s.Name, err, out)
	}
}

// Running reports whether the server's postmaster is up.
func (s *Server) Running() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, err := runas.Command(ctx, "postgres", filepath.Join(BinDir(), "pg_ctl"), "status", "-D", s.DataDir)
	if err != nil {
		return false
	}
	return cmd.Run() == nil
}

// AutoConf appends settings to the server's postgresql.auto.conf, where
// pg_basebackup -R put primary_conninfo; later lines win. Stop the server
// first, or reload it after.
func (s *Server) AutoConf(t testing.TB, settings map[string]string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for k, v := range settings {
		if _, err := fmt.Fprintf(f, "%s = '%s'\n", k, strings.ReplaceAll(v, "'", "''")); err != nil {
			t.Fatal(err)
		}
	}
}

// StartTime is when the postmaster started (pg_postmaster_start_time): it
// changes when the server is restarted.
func (s *Server) StartTime(t testing.TB) time.Time {
	t.Helper()
	db, err := sql.Open("postgres", s.ConnInfo())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var at time.Time
	if err := db.QueryRow("SELECT pg_postmaster_start_time()").Scan(&at); err != nil {
		t.Fatalf("start time of %s: %v", s.Name, err)
	}
	return at
}

// DB opens a connection pool to the server, closed when the test ends.
func (s *Server) DB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", s.ConnInfo())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs SQL statements on the server, failing the test on error.
func (s *Server) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("postgres", s.ConnInfo())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s on %s: %v", query, s.Name, err)
	}
}

// QueryInt runs a query returning one integer.
func (s *Server) QueryInt(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	db, err := sql.Open("postgres", s.ConnInfo())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s on %s: %v", query, s.Name, err)
	}
	return n
}

// Pgbench runs pgbench against the server with the given arguments.
func (s *Server) Pgbench(ctx context.Context, args ...string) error {
	all := append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(s.Port), "-U", "postgres", "-n"}, args...)
	if len(args) > 0 && args[0] == "-i" {
		all = append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(s.Port), "-U", "postgres"}, args...)
	}
	all = append(all, "postgres")
	cmd, err := runas.Command(ctx, "postgres", filepath.Join(BinDir(), "pgbench"), all...)
	if err != nil {
		return err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Fill creates table name holding about mb megabytes.
func (s *Server) Fill(t testing.TB, name string, mb int) {
	t.Helper()
	rows := mb * 1024 * 1024 / 1100 // ~1 kB of text plus tuple overhead per row
	s.Exec(t, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, pad text);
		INSERT INTO %[1]s SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, %d) g`, name, rows))
}

// Eventually polls cond until it holds or timeout passes, then fails the
// test with cond's last explanation.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	why := ""
	for {
		ok, w := cond()
		if ok {
			return
		}
		why = w
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Checksums returns a SHA-256 for every file under dir (and an entry for
// every directory and symlink), keyed by relative path: two equal maps
// mean nothing in the tree changed.
func Checksums(t testing.TB, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			sums[rel+"/"] = info.Mode().String()
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(path)
			sums[rel] = "-> " + l
		default:
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			sums[rel] = info.Mode().String() + " " + hex.EncodeToString(h.Sum(nil))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("checksumming %s: %v", dir, err)
	}
	return sums
}

// DiffChecksums lists what differs between two Checksums results.
func DiffChecksums(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	return d
}

// Tmpfs mounts a tmpfs of size bytes on a new directory (root only) and
// unmounts it when the test ends, after the servers on it have stopped.
// It is a file system of known size, for tests of what does not fit.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir, err := os.MkdirTemp("", "hatui-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		t.Fatalf("mounting a tmpfs on %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v\n%s", dir, err, out)
			return
		}
		os.Remove(dir)
	})
	return dir
}

// ResizeTmpfs changes the size of a tmpfs made by Tmpfs.
func ResizeTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), dir).CombinedOutput(); err != nil {
		t.Fatalf("resizing the tmpfs %s: %v\n%s", dir, err, out)
	}
}

// UsedBytes is what the file system of dir has in use.
func UsedBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}
