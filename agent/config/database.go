package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hatui/hatui/pg"
)

// Database configures the node's PostgreSQL instance. An empty section
// means the node runs no database.
type Database struct {
	Enabled bool `toml:"enabled"`
	// ConnInfo reaches the local instance as a superuser, e.g.
	// "host=/var/run/postgresql port=5432 user=postgres dbname=postgres sslmode=disable".
	ConnInfo string `toml:"conninfo"`
	// DataDir is the data directory; its parent must be writable by the
	// agent, because a re-seed builds the new one next to it.
	DataDir string `toml:"data_dir"`
	// BinDir holds pg_ctl, pg_basebackup and pg_controldata;
	// /usr/lib/postgresql/15/bin when empty.
	BinDir string `toml:"bin_dir"`
	// OSUser owns the data directory and runs the server; "postgres" when
	// empty.
	OSUser string `toml:"os_user"`
	// StartOptions are passed to the server by pg_ctl -o.
	StartOptions string `toml:"start_options"`
	// Geo marks this node as a geo standby: it is never promoted
	// automatically, only by an operator with force.
	Geo bool `toml:"geo"`
	// Standby says the instance starts as a standby: with no master
	// running anywhere it waits and touches nothing (the cold-start rule).
	Standby bool `toml:"standby"`
	// Monitor is how often the instance's status is read; 2 s when unset.
	Monitor Duration `toml:"monitor"`
	// MaxRate limits a re-seed's copy (pg_basebackup --max-rate, e.g.
	// "50M"); unlimited when empty.
	MaxRate string `toml:"max_rate"`
	// PromoteMaxLagBytes is how far behind the old master's last known
	// position a standby may be and still be promoted without force; 0
	// means no limit.
	PromoteMaxLagBytes int64 `toml:"promote_max_lag_bytes"`

	Peers  []DatabasePeer `toml:"peers"`
	Health DatabaseHealth `toml:"health"`
	Images DatabaseImages `toml:"images"`
}

// DatabasePeer is another node's instance: a master to copy from, or a
// rival candidate for promotion.
type DatabasePeer struct {
	Node     string `toml:"node"`
	ConnInfo string `toml:"conninfo"`
	Geo      bool   `toml:"geo"`
}

// DatabaseHealth is the representative query the monitor runs.
type DatabaseHealth struct {
	SQL string `toml:"sql"`
	// ConnInfo overrides the instance's, e.g. to ask as the application.
	ConnInfo string `toml:"conninfo"`
	// Timeout bounds the query; 2 s when unset.
	Timeout Duration `toml:"timeout"`
	// MinRows is how many rows the answer must have; 0 accepts any.
	MinRows int `toml:"min_rows"`
	// Writes says the query writes (a heartbeat UPDATE): it then runs on
	// the master only, and a standby is asked a read-only SELECT 1. A
	// query that does not write runs read-only everywhere.
	Writes bool `toml:"writes"`
}

// DatabaseImages configures fallback images.
type DatabaseImages struct {
	// Dir keeps the images; "<data_dir>.images" when empty. It must be on
	// the data directory's file system.
	Dir string `toml:"dir"`
	// Every is how often a scheduled image is taken; never when unset.
	Every Duration `toml:"every"`
	// Keep is how many images are kept; 3 when unset.
	Keep int `toml:"keep"`
}

// DefaultDatabaseMonitor is the monitor interval when none is configured.
const DefaultDatabaseMonitor = 2 * time.Second

var maxRateRE = regexp.MustCompile(`^[0-9]+[kM]?$`)

// validate checks the [database] section; c is the whole configuration,
// for the file name in errors.
func (d *Database) validate(c *Config) error {
	if !d.Enabled {
		return nil
	}
	bad := func(key, problem, expected string) error {
		return &Error{File: c.File, Key: "database." + key, Problem: problem, Expected: expected}
	}
	const connForm = `a libpq connection string such as "host=10.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable"`
	checkConn := func(key, s string, required bool) error {
		if s == "" {
			if required {
				return bad(key, "missing", connForm)
			}
			return nil
		}
		if _, err := pg.ParseConnInfo(s); err != nil {
			return bad(key, err.Error(), connForm)
		}
		return nil
	}
	if err := checkConn("conninfo", d.ConnInfo, true); err != nil {
		return err
	}
	for _, p := range []struct{ key, val string }{{"data_dir", d.DataDir}, {"bin_dir", d.BinDir}, {"images.dir", d.Images.Dir}} {
		if p.val == "" && p.key != "data_dir" {
			continue
		}
		if p.val == "" || !filepath.IsAbs(p.val) {
			return bad(p.key, fmt.Sprintf("%q is not an absolute path", p.val), "an absolute directory path such as /var/lib/postgresql/15/main")
		}
	}
	if filepath.Clean(d.DataDir) == "/" {
		return bad("data_dir", "the root directory cannot be a data directory", "a directory whose parent the agent may write")
	}
	if d.OSUser != "" && !nameRE.MatchString(d.OSUser) {
		return bad("os_user", fmt.Sprintf("%q is not a user name", d.OSUser), "an operating-system user such as \"postgres\"")
	}
	if d.Monitor.Duration == 0 {
		d.Monitor.Duration = DefaultDatabaseMonitor
	}
	if d.Monitor.Duration < 100*time.Millisecond {
		return bad("monitor", fmt.Sprintf("%v is too short", d.Monitor.Duration), "a duration of at least 100ms, such as \"2s\"")
	}
	if d.MaxRate != "" && !maxRateRE.MatchString(d.MaxRate) {
		return bad("max_rate", fmt.Sprintf("%q is not a rate", d.MaxRate), `kilobytes per second as a number, or with k or M, such as "50M"`)
	}
	if d.PromoteMaxLagBytes < 0 {
		return bad("promote_max_lag_bytes", "must not be negative", "a number of bytes, 0 for no limit")
	}
	seen := map[string]bool{c.Node: true}
	for i, p := range d.Peers {
		key := fmt.Sprintf("peers[%d]", i)
		if p.Node == "" {
			return bad(key+".node", "missing", "the peer's node name")
		}
		if !nameRE.MatchString(p.Node) {
			return bad(key+".node", fmt.Sprintf("%q is not a valid node name", p.Node), "1–63 letters, digits, '.', '_' or '-'")
		}
		if seen[p.Node] {
			what := "named twice"
			if p.Node == c.Node {
				what = "is this node itself"
			}
			return bad(key+".node", fmt.Sprintf("%q %s", p.Node, what), "each other database node once")
		}
		seen[p.Node] = true
		if err := checkConn(key+".conninfo", p.ConnInfo, true); err != nil {
			return err
		}
	}
	h := &d.Health
	if h.SQL != "" && strings.TrimSpace(h.SQL) == "" {
		return bad("health.sql", "blank", "a query against the application's own tables, or no key at all")
	}
	if err := checkConn("health.conninfo", h.ConnInfo, false); err != nil {
		return err
	}
	if h.Timeout.Duration < 0 {
		return bad("health.timeout", "must not be negative", "a duration such as \"2s\"")
	}
	if h.MinRows < 0 {
		return bad("health.min_rows", "must not be negative", "a whole number of rows, 0 to accept any answer")
	}
	if d.Images.Every.Duration < 0 || (d.Images.Every.Duration > 0 && d.Images.Every.Duration < time.Minute) {
		return bad("images.every", fmt.Sprintf("%v is out of range", d.Images.Every.Duration), "a duration of at least 1m, such as \"24h\", or no key for no scheduled images")
	}
	if d.Images.Keep < 0 || d.Images.Keep > 100 {
		return bad("images.keep", fmt.Sprintf("%d is out of range", d.Images.Keep), "a whole number from 1 to 100 (3 when unset)")
	}
	return nil
}
