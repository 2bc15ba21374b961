package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
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
	// AutoReseed lets the agent re-seed by itself a standby whose data
	// cannot stream from the master: another system identifier, a
	// timeline history the master lacks, WAL the master removed, missing
	// or unreadable data. Never for a name, a missing slot or a standby
	// catching up. The data is kept as a fallback image, the copy must
	// fit, and a warning and an alert name the reason and the image. True
	// when unset; false makes it wait for an operator, shown as "needs
	// re-seed: <why>".
	AutoReseed *bool `toml:"auto_reseed"`
	// SlotWALWarn is how much WAL a replication slot on the master may
	// hold before it is warned about: a size ("4GB") or a percentage of
	// the room WAL has on pg_wal's file system, its free space plus what
	// the slots hold ("25%", the default).
	SlotWALWarn string `toml:"slot_wal_warn"`
	// WALDiskAlert is how full pg_wal's file system may be, while slots
	// hold WAL, before an alert: "75%" when unset, so that it comes
	// before the file system passes 80 %.
	WALDiskAlert string `toml:"wal_disk_alert"`
	// MaxSlotWALKeepSize is applied to the local PostgreSQL's
	// max_slot_wal_keep_size (ALTER SYSTEM and a reload): the most WAL a
	// slot may keep before PostgreSQL gives it up, leaving its standby to
	// be re-seeded rather than the master's disk full. A size ("16GB") or
	// "-1" for unlimited; unset leaves the server's own setting alone.
	MaxSlotWALKeepSize string `toml:"max_slot_wal_keep_size"`

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

// Defaults of the slot keys.
const (
	DefaultSlotWALWarn  = "25%"
	DefaultWALDiskAlert = "75%"
)

// AutoReseedAllowed says whether the agent may re-seed by itself.
func (d *Database) AutoReseedAllowed() bool { return d.AutoReseed == nil || *d.AutoReseed }

// SlotWarn returns the slot warning threshold: bytes, or a fraction of
// the room WAL has (one of them is zero).
func (d *Database) SlotWarn() (bytes int64, fraction float64) {
	s := d.SlotWALWarn
	if s == "" {
		s = DefaultSlotWALWarn
	}
	if p, ok := parsePercent(s); ok {
		return 0, p / 100
	}
	n, _ := ParseSize(s)
	return n, 0
}

// DiskAlertPercent is WALDiskAlert as a number.
func (d *Database) DiskAlertPercent() float64 {
	s := d.WALDiskAlert
	if s == "" {
		s = DefaultWALDiskAlert
	}
	p, _ := parsePercent(s)
	return p
}

// MaxSlotWALKeepBytes is MaxSlotWALKeepSize in bytes (-1: unlimited); ok
// is false when it is unset.
func (d *Database) MaxSlotWALKeepBytes() (n int64, ok bool) {
	switch strings.TrimSpace(d.MaxSlotWALKeepSize) {
	case "":
		return 0, false
	case "-1":
		return -1, true
	}
	n, err := ParseSize(d.MaxSlotWALKeepSize)
	return n, err == nil
}

// Warnings are what check-config says of a valid [database] section that
// is still risky.
func (d *Database) Warnings() []string {
	if !d.Enabled || len(d.Peers) == 0 {
		return nil
	}
	const why = "a standby that stays away lets its replication slot keep WAL on the master until pg_wal's file system is full, and a full master disk stops every call"
	n, set := d.MaxSlotWALKeepBytes()
	switch {
	case !set:
		return []string{"database.max_slot_wal_keep_size is not set, so PostgreSQL's own setting applies (unlimited by default): " + why +
			`; set it, e.g. max_slot_wal_keep_size = "16GB" as recipes/ha-agent-database.toml does (the agent applies it)`}
	case n < 0:
		return []string{`database.max_slot_wal_keep_size = "-1" is unlimited: ` + why + `; set a size such as "16GB"`}
	}
	return nil
}

var (
	sizeRE    = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?$`)
	percentRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*%$`)
)

// ParseSize reads a size such as "16GB", "512MB", "1.5G" or "1048576"
// (bytes). Units are binary, as PostgreSQL's are.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[strings.ToLower(m[2])]
	if f*mult >= 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(f * mult), nil
}

func parsePercent(s string) (float64, bool) {
	m := percentRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	return f, err == nil
}

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
	if s := d.SlotWALWarn; s != "" {
		if p, ok := parsePercent(s); ok {
			if p <= 0 || p >= 100 {
				return bad("slot_wal_warn", fmt.Sprintf("%q is out of range", s), "a percentage above 0 and below 100, such as \"25%\", or a size such as \"4GB\"")
			}
		} else if n, err := ParseSize(s); err != nil || n == 0 {
			return bad("slot_wal_warn", fmt.Sprintf("%q is neither a size nor a percentage", s), "a size such as \"4GB\", or a percentage of the room WAL has such as \"25%\"")
		}
	}
	if s := d.WALDiskAlert; s != "" {
		if p, ok := parsePercent(s); !ok || p <= 0 || p >= 80 {
			return bad("wal_disk_alert", fmt.Sprintf("%q is not a percentage below 80", s), "a percentage such as \"75%\": the alert must come before the file system passes 80 %")
		}
	}
	if s := strings.TrimSpace(d.MaxSlotWALKeepSize); s != "" && s != "-1" {
		if n, err := ParseSize(s); err != nil || n < 1<<20 {
			return bad("max_slot_wal_keep_size", fmt.Sprintf("%q is not a size of at least 1MB", s), "a size such as \"16GB\", or \"-1\" for unlimited (not advised)")
		}
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
