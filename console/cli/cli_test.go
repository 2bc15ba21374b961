package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hatui/hatui/console/verb"
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

// TestRunChecksBeforeConfirming: an irreversible verb on a node that does
// not exist is refused as unknown, not as unconfirmed; a re-seed of a
// node that runs no database says so; neither reaches the agent.
func TestRunChecksBeforeConfirming(t *testing.T) {
	snap := &protocol.Snapshot{Deployment: "demo", Sites: []protocol.Site{{Name: "b", Clusters: []protocol.Cluster{{Name: "b",
		Nodes: []protocol.Node{{Name: "pbx-b1", Member: protocol.MemberAlive}}}}}}}
	for _, tt := range []struct {
		line string
		yes  bool
		code int
		want string
	}{
		{"reseed nosuch", false, ExitRefused, `hatui: no node named "nosuch" in demo`},
		{"reseed nosuch", true, ExitRefused, `hatui: no node named "nosuch" in demo`},
		{"reseed pbx-b1", true, ExitRefused, "hatui: pbx-b1 runs no database"},
		{"fence pbx-b1", false, ExitRefused, "cannot be undone and was not confirmed"},
	} {
		var out, errb bytes.Buffer
		sent := 0
		r := &Runner{Table: verb.New(verb.Options{Demo: true}), Yes: tt.yes, Out: &out, Err: &errb,
			Status: func(context.Context, string) (*protocol.Snapshot, error) { return snap, nil },
			Do: func(context.Context, protocol.Action, func(protocol.Progress)) (protocol.Result, error) {
				sent++
				return protocol.Result{OK: true}, nil
			}}
		code := r.Run(context.Background(), tt.line)
		if code != tt.code || !strings.Contains(errb.String(), tt.want) || sent != 0 {
			t.Errorf("%s (yes %v): exit %d, stderr %q, %d sent; want exit %d saying %q, nothing sent", tt.line, tt.yes, code, errb.String(), sent, tt.code, tt.want)
		}
		if strings.Contains(tt.want, "no node") && strings.Contains(errb.String(), "--yes") {
			t.Errorf("%s: asks for --yes for a node that does not exist: %q", tt.line, errb.String())
		}
	}
}

// TestWriteStatusIslandFirst: a status answered from an island says so
// right under the summary line, and marks the sites out of its sight; a
// switch whose driver is gone is shown as last known.
func TestWriteStatusIslandFirst(t *testing.T) {
	asOf := time.Date(2025, 3, 14, 11, 59, 0, 0, time.UTC)
	snap := &protocol.Snapshot{Deployment: "demo", From: "pbx-a1", Time: asOf.Add(time.Minute),
		Island: &protocol.Island{Node: "pbx-a1", Sites: []string{"a"}, Unreached: []string{"arb", "b"}, Votes: 2, Total: 5},
		Sites: []protocol.Site{
			{Name: "a", Clusters: []protocol.Cluster{{Name: "a", Nodes: []protocol.Node{{Name: "pbx-a1", Member: protocol.MemberAlive, State: protocol.StateOnline}}}}},
			{Name: "b", Clusters: []protocol.Cluster{{Name: "b", Nodes: []protocol.Node{{Name: "pbx-b1", Member: protocol.MemberFailed, State: protocol.StateOffline}},
				Switches: []protocol.Switch{{Name: "lines-b", Kind: "line", Node: "pbx-b1", Position: "pbx-b1", Stale: true, AsOf: asOf,
					Watchdog: "on", WatchdogTimeout: 10 * time.Second, Failsafe: "pbx-b2"}}}}},
		}}
	old := time.Local
	time.Local = time.UTC
	defer func() { time.Local = old }()
	var out bytes.Buffer
	WriteStatus(&out, snap)
	lines := strings.Split(out.String(), "\n")
	if !strings.HasPrefix(lines[1], "ISLAND: pbx-a1 reaches only a (2 of 5 geo votes); arb, b out of its sight") {
		t.Errorf("second line = %q, want the island", lines[1])
	}
	for _, want := range []string{"Site b (out of sight of pbx-a1: last known)",
		"LAST KNOWN at 11:59:00: its driver pbx-b1 does not answer; its watchdog sends the lines to pbx-b2 10s after the last kick"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status does not say %q:\n%s", want, out.String())
		}
	}
}
