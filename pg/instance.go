package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hatui/hatui/pg/internal/runas"
)

// DefaultBinDir is where Debian installs PostgreSQL 15's programs.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Instance is the PostgreSQL instance on this node, as the agent manages it.
// Its zero values are safe defaults: fill Node, ConnInfo and DataDir.
type Instance struct {
	// Node is this node's name. It is the application_name the instance
	// uses towards its master (so the master's pg_stat_replication names
	// it) and, sanitised, its replication slot.
	Node string
	// ConnInfo reaches this instance as a superuser (or a member of
	// pg_monitor with replication rights), e.g.
	// "host=/var/run/postgresql port=5432 user=postgres dbname=postgres".
	// lib/pq's default sslmode is require: say sslmode=disable for a
	// socket or loopback connection.
	ConnInfo string
	// DataDir is the data directory. Re-seed and restore build a new one
	// next to it and swap it in by rename, so its parent must be writable
	// by this process.
	DataDir string
	// BinDir holds pg_ctl, pg_basebackup and pg_controldata; DefaultBinDir
	// when empty.
	BinDir string
	// OSUser owns the data directory and runs the server; "postgres" when
	// empty. Used only when this process is root.
	OSUser string
	// LogFile receives the server's output when pg_ctl starts it;
	// "<DataDir>.log" when empty.
	LogFile string
	// StartOptions are passed to the server by pg_ctl -o, e.g. "-p 5433".
	StartOptions string
	// Geo marks a geo standby: one that replicates to another site and is
	// never promoted automatically.
	Geo bool
	// ImagesDir keeps fallback images; "<DataDir>.images" when empty. It
	// must be on the same file system as DataDir, because the previous
	// data directory becomes an image by rename.
	ImagesDir string
	// KeepImages is how many fallback images to keep; 3 when zero.
	KeepImages int
	// Control starts and stops the server; pg_ctl when nil. Set it to
	// drive the server through systemd or runit instead.
	Control Controller
}

// Peer is another node's instance as seen from this one: a candidate
// master to copy from, or a standby to compare with.
type Peer struct {
	Node string
	// ConnInfo reaches the peer over the cluster network with a role that
	// may replicate (pg_basebackup uses the same string with
	// application_name added).
	ConnInfo string
	Geo      bool
}

// Controller starts and stops the server. Implementations must be
// idempotent: Start on a running server and Stop on a stopped one succeed.
type Controller interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Running(ctx context.Context) (bool, error)
}

func (in *Instance) binDir() string {
	if in.BinDir != "" {
		return in.BinDir
	}
	return DefaultBinDir
}

func (in *Instance) bin(name string) string { return filepath.Join(in.binDir(), name) }

func (in *Instance) logFile() string {
	if in.LogFile != "" {
		return in.LogFile
	}
	return filepath.Clean(in.DataDir) + ".log"
}

func (in *Instance) imagesDir() string {
	if in.ImagesDir != "" {
		return in.ImagesDir
	}
	return filepath.Clean(in.DataDir) + ".images"
}

func (in *Instance) keepImages() int {
	if in.KeepImages > 0 {
		return in.KeepImages
	}
	return 3
}

// sibling names a path next to the data directory.
func (in *Instance) sibling(suffix string) string { return filepath.Clean(in.DataDir) + suffix }

func (in *Instance) journalPath() string { return in.sibling(".journal.json") }
func (in *Instance) lockPath() string    { return in.sibling(".lock") }

func (in *Instance) control() Controller {
	if in.Control != nil {
		return in.Control
	}
	return PgCtl{in}
}

// Start starts the server through its Controller.
func (in *Instance) Start(ctx context.Context) error { return in.control().Start(ctx) }

// Stop stops the server (fast shutdown) through its Controller.
func (in *Instance) Stop(ctx context.Context) error { return in.control().Stop(ctx) }

// Running reports whether the server process is up.
func (in *Instance) Running(ctx context.Context) (bool, error) { return in.control().Running(ctx) }

// validate checks the fields every operation needs.
func (in *Instance) validate() error {
	switch {
	case in.Node == "":
		return errors.New("instance has no node name: set Node")
	case in.DataDir == "" || !filepath.IsAbs(in.DataDir):
		return fmt.Errorf("instance %s: data directory %q must be an absolute path", in.Node, in.DataDir)
	case filepath.Clean(in.DataDir) == "/":
		return fmt.Errorf("instance %s: the data directory cannot be /", in.Node)
	case in.ConnInfo == "":
		return fmt.Errorf("instance %s has no connection string: set ConnInfo", in.Node)
	}
	if _, err := ParseConnInfo(in.ConnInfo); err != nil {
		return fmt.Errorf("instance %s: %w", in.Node, err)
	}
	return nil
}

// command builds a PostgreSQL program invocation as the server's user.
func (in *Instance) command(ctx context.Context, program string, args ...string) (*exec.Cmd, error) {
	if !filepath.IsAbs(program) {
		program = in.bin(program)
	}
	return runas.Command(ctx, in.OSUser, program, args...)
}

// hasData reports whether DataDir holds a cluster.
func (in *Instance) hasData() (bool, error) {
	_, err := os.Stat(filepath.Join(in.DataDir, "PG_VERSION"))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("looking at data directory %s: %w", in.DataDir, err)
}

// ControlData runs pg_controldata on the data directory. It reads only.
func (in *Instance) ControlData(ctx context.Context) (ControlData, error) {
	return controlData(ctx, in, in.DataDir)
}

func controlData(ctx context.Context, in *Instance, dir string) (ControlData, error) {
	cmd, err := in.command(ctx, "pg_controldata", "-D", dir)
	if err != nil {
		return ControlData{}, err
	}
	out, err := runas.Output(cmd)
	if err != nil {
		return ControlData{}, fmt.Errorf("reading the control file of %s: %w", dir, err)
	}
	return ParseControlData(string(out))
}

// PgCtl controls the server with pg_ctl. It is the default Controller.
type PgCtl struct{ In *Instance }

// Running asks pg_ctl status.
func (p PgCtl) Running(ctx context.Context) (bool, error) {
	cmd, err := p.In.command(ctx, "pg_ctl", "status", "-D", p.In.DataDir)
	if err != nil {
		return false, err
	}
	out, err := runas.Output(cmd)
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case 3: // not running
			return false, nil
		case 4: // no accessible data directory: nothing can be running from it
			if ok, _ := p.In.hasData(); !ok {
				return false, nil
			}
		}
	}
	return false, fmt.Errorf("asking pg_ctl whether %s runs: %w (%s)", p.In.DataDir, err, strings.TrimSpace(string(out)))
}

// Start runs pg_ctl start and waits until the server accepts connections
// (or, for a standby, has reached a consistent state).
func (p PgCtl) Start(ctx context.Context) error {
	if up, err := p.Running(ctx); err == nil && up {
		return nil
	}
	log := p.In.logFile()
	if f, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640); err == nil {
		f.Close()
		if err := runas.Chown(log, p.In.OSUser); err != nil {
			return err
		}
	}
	args := []string{"start", "-D", p.In.DataDir, "-w", "-t", waitSeconds(ctx, 300), "-l", log}
	if p.In.StartOptions != "" {
		args = append(args, "-o", p.In.StartOptions)
	}
	cmd, err := p.In.command(ctx, "pg_ctl", args...)
	if err != nil {
		return err
	}
	if _, err := runas.Output(cmd); err != nil {
		return fmt.Errorf("starting PostgreSQL in %s: %w (see %s)", p.In.DataDir, err, log)
	}
	return nil
}

// Stop runs pg_ctl stop -m fast: clients are disconnected and the server
// shuts down cleanly, so a standby's restart point and a master's shutdown
// checkpoint are on disk.
func (p PgCtl) Stop(ctx context.Context) error {
	up, err := p.Running(ctx)
	if err != nil {
		return err
	}
	if !up {
		return nil
	}
	cmd, err := p.In.command(ctx, "pg_ctl", "stop", "-D", p.In.DataDir, "-m", "fast", "-w", "-t", waitSeconds(ctx, 300))
	if err != nil {
		return err
	}
	if _, err := runas.Output(cmd); err != nil {
		return fmt.Errorf("stopping PostgreSQL in %s: %w", p.In.DataDir, err)
	}
	return nil
}

// waitSeconds is how long pg_ctl may wait: what is left of ctx, or def.
func waitSeconds(ctx context.Context, def int) string {
	if dl, ok := ctx.Deadline(); ok {
		s := int(time.Until(dl).Seconds())
		if s < 1 {
			s = 1
		}
		if s < def {
			def = s
		}
	}
	return fmt.Sprint(def)
}

var slotUnsafe = regexp.MustCompile(`[^a-z0-9_]+`)

// SlotName turns a node name into a valid replication slot name (lower
// case letters, digits and underscores, at most 63 bytes).
func SlotName(node string) string {
	s := slotUnsafe.ReplaceAllString(strings.ToLower(node), "_")
	s = strings.Trim(s, "_")
	if s == "" {
		s = "standby"
	}
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}
