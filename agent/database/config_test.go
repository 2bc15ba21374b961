package database_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/config"
)

const baseConfig = `node = "pbx-a2"
site = "a"
[gossip]
bind = "10.0.0.2:7946"
keys = ["` + agenttest.Key + `"]
`

// TestDatabaseConfig checks the [database] section's validation: each
// error names the file, the key and the expected form.
func TestDatabaseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, section string
		key, expect   string // "" key: valid
	}{
		{"disabled needs nothing", "[database]\nenabled = false", "", ""},
		{"minimal", "[database]\nenabled = true\nconninfo = \"host=/run/postgresql\"\ndata_dir = \"/var/lib/pg/main\"", "", ""},
		{"no conninfo", "[database]\nenabled = true\ndata_dir = \"/d/main\"", "database.conninfo", "libpq connection string"},
		{"bad conninfo", "[database]\nenabled = true\nconninfo = \"host\"\ndata_dir = \"/d/main\"", "database.conninfo", "libpq connection string"},
		{"relative data_dir", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"main\"", "database.data_dir", "absolute directory path"},
		{"no data_dir", "[database]\nenabled = true\nconninfo = \"host=x\"", "database.data_dir", "absolute directory path"},
		{"peer conninfo", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\n[[database.peers]]\nnode = \"pbx-a1\"\nconninfo = \"host=a\"\n[[database.peers]]\nnode = \"pbx-b1\"\nconninfo = \"nohost\"",
			"database.peers[1].conninfo", "libpq connection string"},
		{"peer is self", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\n[[database.peers]]\nnode = \"pbx-a2\"\nconninfo = \"host=a\"",
			"database.peers[0].node", "each other database node once"},
		{"peer twice", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\n[[database.peers]]\nnode = \"p\"\nconninfo = \"host=a\"\n[[database.peers]]\nnode = \"p\"\nconninfo = \"host=b\"",
			"database.peers[1].node", "each other database node once"},
		{"monitor too short", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\nmonitor = \"1ms\"", "database.monitor", "at least 100ms"},
		{"max rate", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\nmax_rate = \"fast\"", "database.max_rate", "50M"},
		{"images every", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\n[database.images]\nevery = \"1s\"", "database.images.every", "at least 1m"},
		{"health rows", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\n[database.health]\nmin_rows = -1", "database.health.min_rows", "whole number"},
		{"unknown key", "[database]\nenabled = true\nconinfo = \"host=x\"", "database.coninfo", "keys documented"},
		{"slot keys", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\nauto_reseed = false\nslot_wal_warn = \"2GB\"\nwal_disk_alert = \"70%\"\nmax_slot_wal_keep_size = \"16GB\"", "", ""},
		{"slot warn bad", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\nslot_wal_warn = \"lots\"", "database.slot_wal_warn", "4GB"},
		{"slot warn 100%", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\nslot_wal_warn = \"100%\"", "database.slot_wal_warn", "below 100"},
		{"disk alert too late", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\nwal_disk_alert = \"85%\"", "database.wal_disk_alert", "before the file system passes 80"},
		{"keep size bad", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\nmax_slot_wal_keep_size = \"16\"", "database.max_slot_wal_keep_size", "16GB"},
		{"auto_reseed type", "[database]\nenabled = true\nconninfo = \"host=x\"\ndata_dir = \"/d/m\"\nauto_reseed = \"no\"", "database.auto_reseed", "TOML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse("node.toml", []byte(baseConfig+tc.section))
			if tc.key == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if c.Database.Enabled && c.Database.Monitor.Duration != 2*time.Second {
					t.Errorf("monitor default = %v, want 2s", c.Database.Monitor.Duration)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("want a *config.Error for %s, got %v", tc.key, err)
			}
			if ce.File != "node.toml" || ce.Key != tc.key || !strings.Contains(ce.Expected, tc.expect) {
				t.Fatalf("got %q: want file node.toml, key %s, expected form containing %q", err, tc.key, tc.expect)
			}
		})
	}
}

// TestDatabaseSlotSettings checks the defaults and forms of the slot keys
// and the warnings check-config prints.
func TestDatabaseSlotSettings(t *testing.T) {
	for in, want := range map[string]int64{"16GB": 16 << 30, "512MB": 512 << 20, "1.5G": 3 << 29, "1048576": 1 << 20, "4 GiB": 4 << 30, "100kB": 100 << 10} {
		if got, err := config.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "1PB", "12 parsecs"} {
		if _, err := config.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	var d config.Database
	if !d.AutoReseedAllowed() || d.DiskAlertPercent() != 75 {
		t.Errorf("defaults: auto %v, disk alert %v", d.AutoReseedAllowed(), d.DiskAlertPercent())
	}
	if b, f := d.SlotWarn(); b != 0 || f != 0.25 {
		t.Errorf("default slot warning %d bytes, %v of the room; want 25 %%", b, f)
	}
	d.SlotWALWarn = "2GB"
	if b, f := d.SlotWarn(); b != 2<<30 || f != 0 {
		t.Errorf("slot warning 2GB: %d, %v", b, f)
	}
	d.Enabled = true
	if w := d.Warnings(); len(w) != 0 {
		t.Errorf("no peers, no slots: %q", w)
	}
	d.Peers = []config.DatabasePeer{{Node: "pbx-a1", ConnInfo: "host=a"}}
	for keep, want := range map[string]string{"": "is not set", "-1": "unlimited", "16GB": ""} {
		d.MaxSlotWALKeepSize = keep
		w := d.Warnings()
		if (want == "") != (len(w) == 0) || (want != "" && !strings.Contains(w[0], want)) {
			t.Errorf("max_slot_wal_keep_size %q: warnings %q, want %q", keep, w, want)
		}
	}
	d.MaxSlotWALKeepSize = "16GB"
	if n, ok := d.MaxSlotWALKeepBytes(); !ok || n != 16<<30 {
		t.Errorf("MaxSlotWALKeepBytes = %d %v", n, ok)
	}
}

// FuzzDatabaseConfig feeds arbitrary [database] sections to the parser:
// it must return a configuration or an error, never panic.
func FuzzDatabaseConfig(f *testing.F) {
	f.Add("[database]\nenabled = true\nconninfo = \"host=/run/postgresql port=5432\"\ndata_dir = \"/var/lib/pg/main\"\n[[database.peers]]\nnode = \"pbx-a1\"\nconninfo = \"postgres://u@h:5432/db?sslmode=disable\"\n")
	f.Add("[database]\nenabled = true\nconninfo = \"host='a b' password='x\\\\'y'\"\ndata_dir = \"/d\"\nmax_rate = \"50M\"\n[database.health]\nsql = \"SELECT 1\"\ntimeout = \"2s\"\n")
	f.Add("[database]\nenabled = true\n[database.images]\nevery = \"24h\"\nkeep = 3\n")
	f.Fuzz(func(t *testing.T, section string) {
		c, err := config.Parse("fuzz.toml", []byte(baseConfig+section))
		if err == nil && c.Database.Enabled && (c.Database.ConnInfo == "" || c.Database.DataDir == "") {
			t.Fatalf("accepted an enabled database without conninfo or data_dir: %+v", c.Database)
		}
	})
}
