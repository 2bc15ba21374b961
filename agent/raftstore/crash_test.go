package raftstore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/metadb"
)

// smallSegments makes segments a few KiB so a test seals some.
func smallSegments(t *testing.T) {
	old := segmentSize
	segmentSize = 8 << 10
	t.Cleanup(func() { segmentSize = old })
}

func store(t *testing.T, s *Stores, term uint64, from, to uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("%d/%d %s", i, term, strings.Repeat("x", 200)))})
	}
	if err := s.Logs.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every entry the store says it holds and checks its
// payload names its index.
func readAll(t *testing.T, s *Stores) (first, last uint64) {
	t.Helper()
	first, _ = s.Logs.FirstIndex()
	last, _ = s.Logs.LastIndex()
	for i := first; first > 0 && i <= last; i++ {
		var l raft.Log
		if err := s.Logs.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d of %d..%d: %v", i, first, last, err)
		}
		if l.Type == raft.LogCommand && !strings.HasPrefix(string(l.Data), fmt.Sprintf("%d/", i)) {
			t.Fatalf("entry %d holds %.20q", i, l.Data)
		}
	}
	return first, last
}

// startRaft starts raft on s (what the agent does after Open) and
// reports a panic as an error: raft.NewRaft panics when it cannot read
// an entry of its log.
func startRaft(s *Stores) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("raft.NewRaft panicked: %v", p)
		}
	}()
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.LogOutput = io.Discard
	_, trans := raft.NewInmemTransport("n1")
	r, err := raft.NewRaft(conf, &raft.MockFSM{}, s.Logs, s.Stable, s.Snaps, trans)
	if err != nil {
		return err
	}
	return r.Shutdown().Error()
}

// TestReopenAfterSuffixCleared is the crash loop seen after a voter
// lost an election: raft clears a log suffix a new leader does not
// have (DeleteRange to the end), which raft-wal v0.4.0 records as a
// sealed segment without writing its index block. Nothing shows until
// the agent restarts (kill -9 or not): every start then panics in
// raft.NewRaft with "sealed segment has no index block".
func TestReopenAfterSuffixCleared(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "n1"}}}
	confLog := &raft.Log{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(conf)}
	if err := s.Logs.StoreLog(confLog); err != nil {
		t.Fatal(err)
	}
	store(t, s, 1, 2, 10)
	// "clearing log suffix: from=9 to=10", then the new leader's entries.
	if err := s.Logs.DeleteRange(9, 10); err != nil {
		t.Fatal(err)
	}
	store(t, s, 2, 9, 12)
	if err := s.Stable.SetUint64([]byte("CurrentTerm"), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Stable.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, "test", nil)
	if err != nil {
		t.Fatalf("reopen after a cleared suffix: %v", err)
	}
	defer s.Close()
	if first, last := readAll(t, s); first != 1 || last != 12 {
		t.Fatalf("log after reopen is %d..%d, want 1..12", first, last)
	}
	if term, err := s.Stable.GetUint64([]byte("CurrentTerm")); err != nil || term != 2 {
		t.Fatalf("term after reopen: %d, %v", term, err)
	}
	if cand, err := s.Stable.Get([]byte("LastVoteCand")); err != nil || string(cand) != "n2" {
		t.Fatalf("vote after reopen: %q, %v", cand, err)
	}
	if err := startRaft(s); err != nil {
		t.Fatal(err)
	}
}

// sealWithoutIndex rewrites dir's metadata into what raft-wal v0.4.0
// left behind after clearing a suffix: the tail segment marked sealed
// with no index block, and a new empty tail after it. A node upgraded
// with such a log on disk must still start.
func sealWithoutIndex(t *testing.T, dir string, maxIndex uint64) {
	t.Helper()
	meta := &metadb.BoltMetaDB{}
	st, err := meta.Load(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	n := len(st.Segments)
	tail := &st.Segments[n-1]
	if !tail.SealTime.IsZero() {
		t.Fatal("tail already sealed")
	}
	tail.SealTime = time.Now()
	tail.MaxIndex = maxIndex
	tail.IndexStart = 0
	next := *tail
	next.ID = st.NextSegmentID
	next.BaseIndex = maxIndex + 1
	next.MinIndex = maxIndex + 1
	next.MaxIndex = 0
	next.SealTime = time.Time{}
	next.CreateTime = time.Now()
	st.NextSegmentID++
	st.Segments = append(st.Segments, next)
	if err := meta.CommitState(st); err != nil {
		t.Fatal(err)
	}
}

// TestRepairsSealedSegmentWithoutIndex: a log already damaged by the
// old raft-wal is repaired at open (the index block is rebuilt from the
// segment's frames) instead of crashing raft at every start.
func TestRepairsSealedSegmentWithoutIndex(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	store(t, s, 1, 1, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Entries 9 and 10 were cleared: the segment ends at 8.
	sealWithoutIndex(t, dir, 8)
	s, err = Open(dir, "test", nil)
	if err != nil {
		t.Fatalf("open of a log with a sealed segment without index: %v", err)
	}
	if first, last := readAll(t, s); first != 1 || last != 8 {
		t.Fatalf("log after repair is %d..%d, want 1..8", first, last)
	}
	store(t, s, 2, 9, 11)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if first, last := readAll(t, s); first != 1 || last != 11 {
		t.Fatalf("log after repair and appends is %d..%d, want 1..11", first, last)
	}
}

// segments lists dir's segment files, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	sort.Strings(m)
	return m
}

// TestTornTailAfterKill9 cuts the last segment the way a kill -9 (or a
// power loss) during a write leaves it: the last batch half written,
// or garbage where the next frame was going. The store opens with the
// entries before the torn batch and takes new ones.
func TestTornTailAfterKill9(t *testing.T) {
	smallSegments(t)
	for _, how := range []string{"truncated", "garbage"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			// Several sealed segments, then a tail.
			for i := uint64(1); i <= 100; i += 10 {
				store(t, s, 1, i, i+9)
			}
			before, _ := s.Logs.LastIndex()
			segs := segments(t, dir)
			tailFile := segs[len(segs)-1]
			if len(segs) < 3 {
				t.Fatalf("want sealed segments, have %v", segs)
			}
			// The batch the kill interrupts.
			end := fileEnd(t, tailFile)
			store(t, s, 1, before+1, before+5)
			newEnd := fileEnd(t, tailFile)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tear(t, tailFile, how, end, newEnd)
			s, err = Open(dir, "test", nil)
			if err != nil {
				t.Fatalf("open after a torn write: %v", err)
			}
			_, last := readAll(t, s)
			if last != before {
				t.Fatalf("last entry after a torn write is %d, want %d (the last whole batch)", last, before)
			}
			store(t, s, 2, last+1, last+3)
			if _, last = readAll(t, s); last != before+3 {
				t.Fatalf("last after appending to the recovered tail is %d", last)
			}
			s.Close()
		})
	}
}

// fileEnd is how far into the preallocated segment data was written:
// the offset after the last non-zero byte.
func fileEnd(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return int64(n)
}

// tear damages the bytes the last batch wrote, [from, to).
func tear(t *testing.T, path, how string, from, to int64) {
	t.Helper()
	if to <= from {
		t.Fatalf("the last batch wrote nothing (%d..%d)", from, to)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mid := from + (to-from)/2
	switch how {
	case "truncated": // written up to the middle, the rest never reached the disk
		zeros := make([]byte, to-mid)
		_, err = f.WriteAt(zeros, mid)
	case "garbage":
		junk := []byte(strings.Repeat("\xde\xad\xbe\xef", int(to-mid)/4+1))
		_, err = f.WriteAt(junk[:to-mid], mid)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnreadableLogNamesFileAndRemedy: when the log cannot be repaired
// (a sealed segment lost its contents), Open refuses with an error that
// names the file and says what the operator does, instead of raft
// panicking at every start.
func TestUnreadableLogNamesFileAndRemedy(t *testing.T) {
	smallSegments(t)
	dir := t.TempDir()
	s, err := Open(dir, "geo", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 100; i += 10 {
		store(t, s, 1, i, i+9)
	}
	s.Close()
	segs := segments(t, dir)
	victim := segs[1]
	if err := os.Truncate(victim, 0); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, "geo", nil)
	if err == nil {
		s.Close()
		t.Fatal("a log with an emptied sealed segment opened")
	}
	msg := err.Error()
	for _, want := range []string{filepath.Base(victim), "geo raft log", "move", "aside", "one voter at a time"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
}

// TestRebuildInterruptedByCrash: a crash during a rebuild leaves either
// a half-written wal.new beside the old log (discarded, the rebuild runs
// again) or a complete wal.new with the old log already moved aside
// (put in place). Either way the next open has every entry.
func TestRebuildInterruptedByCrash(t *testing.T) {
	for _, when := range []string{"while copying", "between the renames"} {
		t.Run(when, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			store(t, s, 1, 1, 10)
			s.Close()
			sealWithoutIndex(t, dir, 10)
			walDir := filepath.Join(dir, "wal")
			switch when {
			case "while copying":
				if err := os.MkdirAll(walDir+".new", 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(walDir+".new", "wal-meta.db"), []byte("half"), 0o600); err != nil {
					t.Fatal(err)
				}
			case "between the renames":
				// Let a rebuild finish, then undo its last rename.
				s, err := Open(dir, "test", nil)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				if err := os.Rename(walDir, walDir+".new"); err != nil {
					t.Fatal(err)
				}
			}
			s, err = Open(dir, "test", nil)
			if err != nil {
				t.Fatalf("open after a rebuild interrupted %s: %v", when, err)
			}
			defer s.Close()
			if first, last := readAll(t, s); first != 1 || last != 10 {
				t.Fatalf("log is %d..%d, want 1..10", first, last)
			}
			if _, err := os.Stat(walDir + ".new"); !os.IsNotExist(err) {
				t.Errorf("wal.new is still there: %v", err)
			}
		})
	}
}
