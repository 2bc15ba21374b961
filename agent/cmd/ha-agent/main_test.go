package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hatui/hatui/agent/agenttest"
)

// checkConfig runs "ha-agent check-config" on a file holding data and
// returns the exit code, standard output and standard error.
func checkConfig(t *testing.T, data string) (int, string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ha-agent.toml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	capture := func(f **os.File) func() string {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := *f
		*f = w
		done := make(chan string)
		go func() {
			b, _ := io.ReadAll(r)
			done <- string(b)
		}()
		return func() string {
			w.Close()
			*f = old
			return <-done
		}
	}
	stdout, stderr := capture(&os.Stdout), capture(&os.Stderr)
	code := run([]string{"check-config", path})
	return code, stdout(), stderr()
}

// TestCheckConfigWarnsOfUnboundedSlots: a valid file whose database nodes
// may keep WAL without limit passes with a warning saying what to set.
func TestCheckConfigWarnsOfUnboundedSlots(t *testing.T) {
	base := agenttest.Render(agenttest.Node{Name: "pbx-a2", Site: "a", IP: "127.0.0.1", Dir: t.TempDir()})
	db := `[database]
enabled = true
# nothing listens on port 1: the live part of the check stays silent
conninfo = "host=127.0.0.1 port=1 user=postgres sslmode=disable connect_timeout=1"
data_dir = "/var/lib/postgresql/15/main"
%s
[[database.peers]]
node = "pbx-a1"
conninfo = "host=127.0.0.1 port=1 user=postgres sslmode=disable"
`
	code, out, errOut := checkConfig(t, base+strings.Replace(db, "%s", "", 1))
	if code != 0 || !strings.Contains(out, "ok, with 1 warning(s)") ||
		!strings.Contains(errOut, "warning: database.max_slot_wal_keep_size is not set") || !strings.Contains(errOut, `"16GB"`) {
		t.Errorf("unset: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, out, errOut = checkConfig(t, base+strings.Replace(db, "%s", `max_slot_wal_keep_size = "16GB"`, 1))
	if code != 0 || strings.Contains(out, "warning") || errOut != "" {
		t.Errorf("set: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
