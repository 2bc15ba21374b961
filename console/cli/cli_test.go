package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
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
	golden := filepath.Join("testdata", "status.golden")
	if *update {
		os.WriteFile(golden, out.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("status differs from %s:\n%s", golden, out.String())
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
