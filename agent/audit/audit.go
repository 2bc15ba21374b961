// Package audit keeps the append-only record of operator actions: who did
// what, when, and how it ended. One JSON object per line, so that grep,
// jq and a log shipper all read it, and a torn last line after a crash
// costs only that line.
package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Entry is one audited action.
type Entry struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`             // the agent that carried it out
	User   string    `json:"user"`             // who asked
	Via    string    `json:"via,omitempty"`    // the agent that forwarded it, if any
	Action string    `json:"action"`           // as typed: "standby pbx-a2"
	Result string    `json:"result"`           // "ok", "refused", "failed"
	Detail string    `json:"detail,omitempty"` // the message shown to the operator
}

// Log appends entries to a file opened with O_APPEND.
type Log struct {
	mu sync.Mutex
	f  *os.File
}

// Open opens (creating if needed) the audit log at path.
func Open(path string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating audit log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	return &Log{f: f}, nil
}

// Append writes one entry and syncs it to disk: an audit record that a
// power cut can erase is no record.
func (l *Log) Append(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding audit entry: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing audit log: %w", err)
	}
	return l.f.Sync()
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }
