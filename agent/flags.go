package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Flags are the operator's settings of this node, kept across restarts.
type Flags struct {
	Standby     bool      `json:"standby"`
	Maintenance bool      `json:"maintenance"`
	Updated     time.Time `json:"updated,omitempty"`
	By          string    `json:"by,omitempty"`
}

// flagStore persists Flags in one small JSON file, replaced atomically so
// that a crash leaves either the old or the new flags, never a torn file.
type flagStore struct {
	path string
	mu   sync.Mutex
	f    Flags
}

func openFlags(path string) (*flagStore, error) {
	s := &flagStore{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("reading node flags: %w", err)
	}
	if err := json.Unmarshal(b, &s.f); err != nil {
		return nil, fmt.Errorf("reading node flags from %s: %v (the file is damaged: fix or remove it; the node then starts online)", path, err)
	}
	return s, nil
}

func (s *flagStore) get() Flags {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f
}

func (s *flagStore) describe() string {
	f := s.get()
	switch {
	case f.Standby && f.Maintenance:
		return "standby, maintenance"
	case f.Standby:
		return "standby"
	case f.Maintenance:
		return "maintenance"
	}
	return "online"
}

// update applies change and persists the result before returning it, so
// that a flag is never published that a restart would forget.
func (s *flagStore) update(change func(*Flags)) (Flags, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.f
	change(&next)
	next.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return s.f, fmt.Errorf("encoding node flags: %w", err)
	}
	if err := writeFileAtomic(s.path, b, 0o640); err != nil {
		return s.f, fmt.Errorf("saving node flags: %w", err)
	}
	s.f = next
	return next, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
