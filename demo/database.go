package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/database"
	"github.com/hatui/hatui/pg"
)

// The demo's databases: site a's first PBX is the master, its second a
// streaming standby. Other nodes run none.
const (
	demoMaster  = "pbx-a1"
	demoStandby = "pbx-a2"
)

// pgBinDir holds the PostgreSQL programs the demo uses; the
// HATUI_PG_BINDIR environment variable overrides it.
func pgBinDir() string {
	if d := os.Getenv("HATUI_PG_BINDIR"); d != "" {
		return d
	}
	return pg.DefaultBinDir
}

func init() {
	features = append(features, databaseFeature)
	machines = append(machines, machine{crash: crashDatabase, boot: bootDatabase})
}

// crashDatabase stops a crashed node's PostgreSQL at once, as the crash of
// its machine would (the data directory stays, to be recovered at boot).
func crashDatabase(d *Deployment, n *Node) {
	if s := demoServerOf(d, n); s != nil && s.guard != nil {
		s.guard.Close()
		_ = s.watcher.Wait()
		s.guard, s.watcher = nil, nil
	}
}

// bootDatabase starts a booting node's PostgreSQL, as its init system
// would: in the role its data directory says (an old master comes back
// as a master; keeping it out of the way is the cluster's business).
func bootDatabase(d *Deployment, n *Node) error {
	s := demoServerOf(d, n)
	if s == nil || s.guard != nil {
		return nil
	}
	demoDatabases.Lock()
	p := demoDatabases.m[d]
	demoDatabases.Unlock()
	return p.start(s)
}

// demoServerOf returns the node's PostgreSQL server once the demo's
// servers are set up, or nil.
func demoServerOf(d *Deployment, n *Node) *demoServer {
	demoDatabases.Lock()
	p := demoDatabases.m[d]
	demoDatabases.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
	default:
		return nil // still being set up: the set-up owns the servers
	}
	if p.err != nil {
		return nil
	}
	return p.servers[n.Name]
}

// demoDatabases are the PostgreSQL servers of running demos.
var demoDatabases = struct {
	sync.Mutex
	m map[*Deployment]*demoPG
}{m: map[*Deployment]*demoPG{}}

// databaseFeature gives pbx-a1 and pbx-a2 a database feature over real
// PostgreSQL servers when the programs exist and this process is root
// (PostgreSQL runs as the postgres user), unless HATUI_DEMO_NO_DATABASE
// is set; otherwise nothing, and the demo works without databases.
func databaseFeature(d *Deployment, n *Node) (agent.FeatureFunc, error) {
	if n.Name != demoMaster && n.Name != demoStandby {
		return nil, nil
	}
	if d.noDB || demoPGAvailable() != nil || os.Getenv("HATUI_DEMO_NO_DATABASE") != "" {
		return nil, nil
	}
	p, err := demoPGFor(d, n)
	if err != nil {
		return nil, err
	}
	cfg := p.config(n.Name)
	return database.NewWith(database.Options{Config: &cfg, Ready: p.wait}), nil
}

// demoPGAvailable says why the demo cannot run PostgreSQL, or nil.
func demoPGAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: PostgreSQL would need its own user")
	}
	for _, prog := range []string{"initdb", "pg_ctl", "pg_basebackup", "pg_controldata", "postgres"} {
		if _, err := os.Stat(filepath.Join(pgBinDir(), prog)); err != nil {
			return fmt.Errorf("PostgreSQL program %s missing: %w", prog, err)
		}
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return err
	}
	return nil
}

// demoPG is one demo's pair of servers, set up in the background so that
// the demo starts at once; the features show "starting" until it is done.
type demoPG struct {
	dir     string
	servers map[string]*demoServer
	done    chan struct{}
	err     error
	ctx     context.Context
	cancel  context.CancelFunc
}

// demoServer is one PostgreSQL server of the demo.
type demoServer struct {
	node    string
	dir     string // owned by postgres: data, log, images, journal
	ip      string
	port    int
	guard   *os.File // the watchdog's pipe: closing it stops the server
	watcher *exec.Cmd
}

func (s *demoServer) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *demoServer) connInfo() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=5", s.ip, s.port)
}

// demoPGFor returns the deployment's servers, starting their set-up on
// first use (while the demo starts, so registering the cleanup cannot
// race with Close).
func demoPGFor(d *Deployment, n *Node) (*demoPG, error) {
	demoDatabases.Lock()
	defer demoDatabases.Unlock()
	if p := demoDatabases.m[d]; p != nil {
		return p, nil
	}
	p := &demoPG{dir: filepath.Join(d.Dir(), "postgres"), servers: map[string]*demoServer{}, done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	// The standby's node may not be built yet: its address follows the
	// layout, on the subnet of the node being built now.
	prefix := n.IP[:strings.LastIndex(n.IP, ".")]
	for i, l := range Layout {
		if l.Node != demoMaster && l.Node != demoStandby {
			continue
		}
		s := &demoServer{node: l.Node, dir: filepath.Join(p.dir, l.Node), ip: fmt.Sprintf("%s.%d", prefix, i+1)}
		port, err := freePort(s.ip)
		if err != nil {
			return nil, err
		}
		s.port = port
		p.servers[l.Node] = s
	}
	demoDatabases.m[d] = p
	go func() {
		p.err = p.setup()
		close(p.done)
	}()
	d.OnClose(func() {
		p.close()
		demoDatabases.Lock()
		delete(demoDatabases.m, d)
		demoDatabases.Unlock()
	})
	return p, nil
}

// wait is the features' Ready: it returns when the servers are up.
func (p *demoPG) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// config is the [database] section of a demo node.
func (p *demoPG) config(node string) config.Database {
	s := p.servers[node]
	c := config.Database{
		Enabled: true, ConnInfo: s.connInfo(), DataDir: s.dataDir(), BinDir: pgBinDir(), OSUser: "postgres",
		Standby: node == demoStandby, Monitor: config.Duration{Duration: config.DefaultDatabaseMonitor},
		Health: config.DatabaseHealth{SQL: "SELECT 1", MinRows: 1},
		// Bounded, as every recipe has it: a standby that stays away
		// must never fill the master's disk.
		MaxSlotWALKeepSize: "1GB",
	}
	for name, o := range p.servers {
		if name != node {
			c.Peers = append(c.Peers, config.DatabasePeer{Node: name, ConnInfo: o.connInfo()})
		}
	}
	return c
}

// setup makes a master with initdb and a standby from it with
// pg_basebackup, each on its node's loopback address.
func (p *demoPG) setup() error {
	// The demo directory is private to root; postgres must pass through it.
	if err := os.Chmod(filepath.Dir(p.dir), 0o711); err != nil {
		return err
	}
	m, sb := p.servers[demoMaster], p.servers[demoStandby]
	for _, s := range []*demoServer{m, sb} {
		if err := mkdirPostgres(s.dir); err != nil {
			return err
		}
	}
	if err := p.run("initdb", "-N", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-D", m.dataDir()); err != nil {
		return err
	}
	if err := m.configure(); err != nil {
		return err
	}
	if err := p.start(m); err != nil {
		return err
	}
	ci := pg.ConnInfo{"host": m.ip, "port": strconv.Itoa(m.port), "user": "postgres", "application_name": demoStandby}
	if err := p.run("pg_basebackup", "-d", ci.String(), "-D", sb.dataDir(), "-X", "stream", "-R",
		"-S", pg.SlotName(demoStandby), "-C", "-c", "fast", "--no-sync"); err != nil {
		return err
	}
	if err := sb.configure(); err != nil {
		return err
	}
	return p.start(sb)
}

// configure appends the demo's settings; later lines win, so the
// standby's copy of the master's file gets its own address.
func (s *demoServer) configure() error {
	lines := []string{
		"", "# hatui demo",
		fmt.Sprintf("listen_addresses = '%s'", s.ip),
		fmt.Sprintf("port = %d", s.port),
		fmt.Sprintf("unix_socket_directories = '%s'", s.dir),
		"shared_buffers = 16MB", "max_connections = 30", "max_wal_senders = 6", "max_replication_slots = 6",
		"wal_keep_size = 64MB", "wal_receiver_status_interval = 1s", "hot_standby_feedback = on",
		"fsync = off", "synchronous_commit = off", "log_min_messages = warning",
	}
	f, err := os.OpenFile(filepath.Join(s.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configuring the demo database of %s: %w", s.node, err)
	}
	defer f.Close()
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	return err
}

// start starts a server under a watchdog: a shell holding a pipe from
// this process, which stops the server when the pipe closes, so a demo
// that dies without Close leaves no server running.
func (p *demoPG) start(s *demoServer) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := p.command(context.Background(), "/bin/sh", "-c", `read _ignored; exec "$0" stop -D "$1" -m immediate`,
		filepath.Join(pgBinDir(), "pg_ctl"), s.dataDir())
	cmd.Stdin = r
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("starting the watchdog of the demo database on %s: %w", s.node, err)
	}
	r.Close()
	s.guard, s.watcher = w, cmd
	return p.run("pg_ctl", "start", "-D", s.dataDir(), "-w", "-t", "60", "-l", s.dataDir()+".log")
}

// close stops the servers (immediately: the demo's data is thrown away).
func (p *demoPG) close() {
	p.cancel()
	<-p.done
	for _, s := range p.servers {
		if s.guard != nil {
			s.guard.Close()
			_ = s.watcher.Wait()
			s.guard, s.watcher = nil, nil
		}
	}
}

// command builds a command that runs as postgres.
func (p *demoPG) command(ctx context.Context, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=/var/lib/postgresql"}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if u, err := user.Lookup("postgres"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	return cmd
}

func (p *demoPG) run(program string, args ...string) error {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	cmd := p.command(ctx, filepath.Join(pgBinDir(), program), args...)
	// pg_basebackup forks a WAL streamer that holds the output pipe: a
	// demo closed mid-setup kills the whole group, and does not wait long
	// for the pipe.
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("demo database: %s: %w: %s", program, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func mkdirPostgres(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("demo database directory: %w", err)
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chown(d, uid, gid); err != nil {
			return fmt.Errorf("demo database directory: %w", err)
		}
	}
	return os.Chmod(filepath.Dir(dir), 0o755)
}

// freePort asks the kernel for a free TCP port on ip.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("demo database port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
