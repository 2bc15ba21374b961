package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const key = "f3r7m1w4qH0n8C5sXk2c6p9yZb1vA0eL3uT7oI4jQ5g="

func TestExampleConfigsAreValid(t *testing.T) {
	files, _ := filepath.Glob("../../recipes/*.toml")
	files2, _ := filepath.Glob("../../recipes/*/*.toml")
	files = append(files, files2...)
	if len(files) == 0 {
		t.Fatal("no example configs found in recipes/")
	}
	for _, f := range files {
		// A bootstrap recipe's files are templates: agent/enroll's
		// TestRecipesRender renders them and checks the result.
		if _, err := os.Stat(filepath.Join(filepath.Dir(f), "recipe.toml")); err == nil {
			continue
		}
		if _, err := Load(f); err != nil {
			t.Errorf("example %s: %v", f, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("min.toml", []byte(`node = "pbx-a1"
site = "a"
[gossip]
bind = "10.0.0.1:7946"
keys = ["`+key+`"]`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "a" || c.Peer.Bind != "10.0.0.1:7947" || c.Gossip.ProbeInterval.Duration != 150*time.Millisecond ||
		c.Geo.DeadMan.Duration != 2*time.Hour || c.Socket.Path != "/run/ha-agent/ha-agent.sock" {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestBadValuesNameFileKeyAndForm(t *testing.T) {
	base := "node = \"pbx-a1\"\nsite = \"a\"\n"
	tests := []struct {
		name, data, key, expect string
	}{
		{"missing node", `site = "a"`, "node", "letters"},
		{"bad node name", `node = "pbx a1"` + "\nsite = \"a\"", "node", "letters"},
		{"duration typo", base + "[gossip]\nprobe_interval = \"200 ms\"", "gossip.probe_interval", "200ms"},
		{"timeout not below interval", base + "[gossip]\nprobe_interval = \"100ms\"\nprobe_timeout = \"100ms\"", "gossip.probe_timeout", "shorter"},
		{"unknown key", base + "[gossip]\nprobe_intervall = \"1s\"", "gossip.probe_intervall", "spelling"},
		{"bad bind", base + "[gossip]\nbind = \"10.0.0.1\"", "gossip.bind", "host:port"},
		{"bad key", base + "[gossip]\nkeys = [\"c2hvcnQ=\"]", "gossip.keys[0]", "16, 24 or 32"},
		{"bad geo mode", base + "[geo]\nmode = \"sometimes\"", "geo.mode", "manual"},
		{"relative state dir", base + "state_dir = \"var/lib\"", "state_dir", "absolute"},
		{"wrong type", base + "[gossip]\nsuspicion_mult = \"four\"", "gossip.suspicion_mult", "TOML"},
		{"suspicion out of range", base + "[gossip]\nsuspicion_mult = 0", "gossip.suspicion_mult", "1 to 20"},
		{"broken toml", base + "[gossip\n", "", "TOML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("/etc/ha-agent/node.toml", []byte(tt.data))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *config.Error", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "/etc/ha-agent/node.toml: ") {
				t.Errorf("message does not start with the file: %q", msg)
			}
			if tt.key != "" && ce.Key != tt.key {
				t.Errorf("key = %q, want %q (message %q)", ce.Key, tt.key, msg)
			}
			if !strings.Contains(msg, tt.expect) {
				t.Errorf("message %q does not mention %q", msg, tt.expect)
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "keys")
	os.WriteFile(kf, []byte("# primary first\n"+key+"\nnot-a-key\n"), 0o600)
	c, err := Parse("n.toml", []byte("node = \"n\"\nsite = \"s\"\n[gossip]\nkey_file = \""+kf+"\""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.LoadKeys()
	if err == nil || !strings.Contains(err.Error(), kf+": line 3") {
		t.Fatalf("bad line in key file: err = %v, want file and line 3", err)
	}
}
