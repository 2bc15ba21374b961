package history

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

func ev(i int, node string) protocol.Event {
	return protocol.Event{Time: time.Date(2026, 12, 4, 10, 0, i, 0, time.UTC), Node: node, Kind: "action",
		Severity: protocol.SevInfo, Message: fmt.Sprintf("event %d", i)}
}

func TestQueryFiltersAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		node := "a"
		if i%2 == 1 {
			node = "b"
		}
		if err := s.Append(ev(i, node)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err = Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all", Query{}, []string{"event 0", "event 1", "event 2", "event 3", "event 4", "event 5", "event 6", "event 7", "event 8", "event 9"}},
		{"since", Query{Since: ev(7, "").Time}, []string{"event 7", "event 8", "event 9"}},
		{"node", Query{Node: "b", Limit: 2}, []string{"event 7", "event 9"}},
		{"limit keeps the newest", Query{Limit: 3}, []string{"event 7", "event 8", "event 9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Query(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, e := range got {
				msgs = append(msgs, e.Message)
			}
			if strings.Join(msgs, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %v, want %v", msgs, tt.want)
			}
		})
	}
}

func TestBoundedOnDisk(t *testing.T) {
	dir := t.TempDir()
	const bound = 20 << 10
	s, err := Open(dir, bound)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2000 {
		if err := s.Append(ev(i%60, "a")); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, n := range []string{currentName, previousName} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total > bound {
		t.Fatalf("history takes %d bytes, bound %d", total, bound)
	}
	got, err := s.Query(Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 50 {
		t.Fatalf("only %d events kept after rotation", len(got))
	}
}

func TestTornLineIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Append(ev(1, "a"))
	s.Close()
	f, _ := os.OpenFile(filepath.Join(dir, currentName), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-12-04T10:00:02Z","node":"a","kin`)
	f.Close()
	s, err = Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Append(ev(3, "a"))
	got, err := s.Query(Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Message != "event 1" || got[1].Message != "event 3" {
		t.Fatalf("after a torn line: %+v, want events 1 and 3 (the torn line skipped, the next append on a line of its own)", got)
	}
}

func TestNewestRelayedPerNode(t *testing.T) {
	s, err := Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e1, e2, own := ev(1, "b"), ev(5, "b"), ev(9, "a")
	e1.Relayed, e2.Relayed = true, true
	for _, e := range []protocol.Event{e1, e2, own} {
		s.Append(e)
	}
	n, err := s.Newest()
	if err != nil {
		t.Fatal(err)
	}
	if !n["b"].Equal(e2.Time) || !n["a"].IsZero() {
		t.Fatalf("newest relayed per node: %v", n)
	}
}
