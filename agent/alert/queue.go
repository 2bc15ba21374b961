package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// recordVersion is written in every queue file; a file from a newer
// version is left alone rather than half understood.
const recordVersion = 1

// record is one queue file: the alert and the targets done with it
// (delivered, or given up after MaxAttempts).
type record struct {
	Version int      `json:"version"`
	Alert   Alert    `json:"alert"`
	Done    []string `json:"done,omitempty"`
}

// entry is one queued alert, shared by the queues of all its targets.
type entry struct {
	seq   uint64
	alert Alert

	mu   sync.Mutex
	file string   // "" when it could not be written: kept in memory only
	done []string // target ids done with it
	left int      // targets not yet done
}

// fileName is the queue file of sequence number seq: zero-padded, so that
// the names sort in the order the alerts were sent.
func fileName(seq uint64) string { return fmt.Sprintf("%020d.json", seq) }

// parseFileName returns the sequence number of a queue file name.
func parseFileName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".json")
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// decodeRecord parses a queue file. Queue files are the agent's own, but a
// disk fills up and a power cut tears writes, so nothing is trusted.
func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("decoding queued alert: %w", err)
	}
	if r.Version != recordVersion {
		return record{}, fmt.Errorf("queued alert has version %d, this agent reads %d", r.Version, recordVersion)
	}
	if r.Alert.ID == "" {
		return record{}, errors.New("queued alert has no id")
	}
	return r, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either
// the old or the new content: temporary file, fsync, rename, fsync of the
// directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// persist writes e's queue file. Called with e.mu held or before e is
// shared.
func (s *Sender) persist(e *entry) error {
	b, err := json.Marshal(record{Version: recordVersion, Alert: e.alert, Done: e.done})
	if err != nil {
		return fmt.Errorf("encoding alert: %w", err)
	}
	path := filepath.Join(s.cfg.QueueDir, fileName(e.seq))
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("writing alert to queue: %w", err)
	}
	e.file = path
	return nil
}

// finish records that target t is done with e, and deletes e's file when
// every target is.
func (s *Sender) finish(t *target, e *entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.done = append(e.done, t.id)
	e.left--
	if e.file == "" {
		return
	}
	if e.left > 0 {
		if err := s.persist(e); err != nil {
			s.log.Error("alert queue: cannot record a delivery; after a restart the target may get the alert again",
				"target", t.id, "alert", e.alert.ID, "err", err)
		}
		return
	}
	if err := os.Remove(e.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("alert queue: cannot delete a delivered alert; after a restart it is sent again",
			"file", e.file, "alert", e.alert.ID, "err", err)
		return
	}
	e.file = ""
}

// load re-queues the alerts left in the queue directory by an earlier
// run, in the order they were sent, to the targets not yet done with
// them. It returns the highest sequence number found.
func (s *Sender) load() (uint64, error) {
	dir := s.cfg.QueueDir
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("reading alert queue: %w", err)
	}
	type found struct {
		seq  uint64
		name string
	}
	var files []found
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".tmp-") {
			// A write cut off by a crash: Send had not returned, the
			// caller knows the alert may be lost. Nothing to keep.
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if seq, ok := parseFileName(name); ok && de.Type().IsRegular() {
			files = append(files, found{seq, name})
		}
	}
	slices.SortFunc(files, func(a, b found) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	var maxSeq uint64
	ids := map[string]bool{}
	for _, t := range s.targets {
		ids[t.id] = true
	}
	requeued := 0
	for _, f := range files {
		maxSeq = f.seq
		path := filepath.Join(dir, f.name)
		b, err := os.ReadFile(path)
		var r record
		if err == nil {
			r, err = decodeRecord(b)
		}
		if err != nil {
			bad := path + ".bad"
			s.log.Error("alert queue: unreadable file set aside; read it to see what was not sent",
				"file", bad, "err", err)
			if rerr := os.Rename(path, bad); rerr != nil {
				s.log.Error("alert queue: cannot set aside an unreadable file", "file", path, "err", rerr)
			}
			continue
		}
		e := &entry{seq: f.seq, alert: r.Alert, file: path, done: r.Done}
		var todo []*target
		for _, t := range s.targets {
			if !slices.Contains(r.Done, t.id) {
				todo = append(todo, t)
			}
		}
		if len(todo) == 0 {
			// Done by every target (the delete was cut off), or by all
			// the targets this configuration still has.
			if err := os.Remove(path); err != nil {
				s.log.Error("alert queue: cannot delete a delivered alert", "file", path, "err", err)
			}
			continue
		}
		e.left = len(todo)
		for _, t := range todo {
			t.queue = append(t.queue, e)
		}
		requeued++
	}
	if requeued > 0 {
		s.log.Info("alert queue: re-queued alerts from an earlier run", "count", requeued, "dir", dir)
	}
	return maxSeq, nil
}
