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
