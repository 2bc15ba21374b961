package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hatui/hatui/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestWriteStatusGolden pins the plain-text status of a fixed deployment:
// groups with their resources, fail counts and checks, links, databases,
// switches, failed actions, the geo countdown and recent events.
func TestWriteStatusGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var snap protocol.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	old := time.Local
	time.Local = time.UTC
	defer func() { time.Local = old }()
	var out bytes.Buffer
	WriteStatus(&out, &snap)
	checkGolden(t, "status.golden", out.Bytes())
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n%s", golden, got)
	}
}

func TestLinks(t *testing.T) {
	for _, tc := range []struct {
		ls   []protocol.Link
		want string
	}{
		{nil, ""},
		{[]protocol.Link{{Peer: "b", Path: "serf", Up: true}, {Peer: "b", Path: "serial", Up: true}}, "links 2/2 up"},
		{[]protocol.Link{{Peer: "b", Path: "serf", Up: false}, {Peer: "b", Path: "serial", Up: true}}, "links 1/2 up, DOWN: serf to b"},
	} {
		if got := links(tc.ls); got != tc.want {
			t.Errorf("links(%v) = %q, want %q", tc.ls, got, tc.want)
		}
	}
}

// TestDatabaseLinesGolden pins the status text of the database states an
// operator must act on: a master whose slot holds WAL for a standby that
// is down, its filling pg_wal disk, a down standby seen by the master, one
// catching up, one that needs a re-seed, and one never reached; each
// notice with what to do.
func TestDatabaseLinesGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "databases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dbs []protocol.Database
	if err := json.Unmarshal(b, &dbs); err != nil {
		t.Fatal(err)
	}
	old := time.Local
	time.Local = time.UTC
	defer func() { time.Local = old }()
	now := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	tw := tabwriter.NewWriter(&out, 0, 2, 2, ' ', 0)
	for _, d := range dbs {
		for _, l := range databaseLines(d, now) {
			fmt.Fprintln(tw, l)
		}
	}
	tw.Flush()
	checkGolden(t, "databases.golden", out.Bytes())
}
