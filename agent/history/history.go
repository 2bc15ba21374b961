// Package history keeps an agent's event log on disk, bounded, so that an
// operator can read back what happened an hour ago, after a restart, and
// on any node: every agent records its own events and those it relays from
// its peers, audit entries included.
//
// The store is two JSON-lines files: the current one, and the one before
// it. When the current file passes half the size bound it replaces the
// older one, so the history never takes more than the bound and always
// holds at least the newest half of it. Lines are appended without fsync:
// the history is for reading back, the audit log (fsynced) is the record
// that must survive a power cut. A torn last line is skipped on reading.
package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hatui/hatui/protocol"
)

// DefaultMaxBytes bounds a store on disk: tens of thousands of events, days
// of a busy deployment.
const DefaultMaxBytes = 8 << 20

const (
	currentName  = "events.jsonl"
	previousName = "events.1.jsonl"
)

// Store is a bounded, persistent event history.
type Store struct {
	dir      string
	maxBytes int64

	mu   sync.Mutex
	f    *os.File
	size int64
	err  error // the last write error, reported once
}

// Open opens (creating if needed) the history in dir, bounded to maxBytes
// on disk (DefaultMaxBytes when 0).
func Open(dir string, maxBytes int64) (*Store, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating history directory: %w", err)
	}
	s := &Store{dir: dir, maxBytes: maxBytes}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) open() error {
	f, err := os.OpenFile(filepath.Join(s.dir, currentName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening history: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("reading history size: %w", err)
	}
	s.f, s.size = f, fi.Size()
	if s.size > 0 {
		// A crash mid-line leaves a torn last line: end it, so the next
		// event starts a line of its own instead of joining the torn one.
		last := make([]byte, 1)
		if r, err := os.Open(f.Name()); err == nil {
			if _, err := r.ReadAt(last, s.size-1); err == nil && last[0] != '\n' {
				n, _ := f.Write([]byte{'\n'})
				s.size += int64(n)
			}
			r.Close()
		}
	}
	return nil
}

// Append adds one event. A failure to write is returned once and then
// kept quiet until a write succeeds again, so a full disk is said once,
// not on every event.
func (s *Store) Append(e protocol.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding history entry: %w", err)
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("history is closed")
	}
	if s.size+int64(len(b)) > s.maxBytes/2 && s.size > 0 {
		if err := s.rotate(); err != nil {
			return s.fail(err)
		}
	}
	n, err := s.f.Write(b)
	s.size += int64(n)
	if err != nil {
		return s.fail(fmt.Errorf("writing history: %w", err))
	}
	s.err = nil
	return nil
}

func (s *Store) fail(err error) error {
	if s.err != nil {
		return nil
	}
	s.err = err
	return err
}

// rotate makes the current file the previous one and starts a new one.
func (s *Store) rotate() error {
	s.f.Close()
	s.f = nil
	if err := os.Rename(filepath.Join(s.dir, currentName), filepath.Join(s.dir, previousName)); err != nil {
		s.open() // keep writing to what we have
		return fmt.Errorf("rotating history: %w", err)
	}
	return s.open()
}

// Query selects events from the history.
type Query struct {
	// Since keeps events at or after this time; zero keeps all.
	Since time.Time
	// Node keeps events of this node only; "" keeps all.
	Node string
	// Limit keeps the newest Limit events; 0 keeps all.
	Limit int
}

// Query returns the matching events, oldest first.
func (s *Store) Query(q Query) ([]protocol.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocol.Event
	for _, name := range []string{previousName, currentName} {
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading history: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var e protocol.Event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue // a torn line from a crash
			}
			if (!q.Since.IsZero() && e.Time.Before(q.Since)) || (q.Node != "" && e.Node != q.Node) {
				continue
			}
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b protocol.Event) int { return a.Time.Compare(b.Time) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// Newest returns, per node, the time of the newest relayed event in the
// history, so that a restarted agent does not record again what its peers
// had already reported before the restart.
func (s *Store) Newest() (map[string]time.Time, error) {
	evs, err := s.Query(Query{})
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, e := range evs {
		if e.Relayed && e.Time.After(out[e.Node]) {
			out[e.Node] = e.Time
		}
	}
	return out, nil
}

// Close closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
