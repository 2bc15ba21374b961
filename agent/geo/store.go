package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// stores are raft's log, stable and snapshot stores.
type stores struct {
	logs    raft.LogStore
	stable  raft.StableStore
	snaps   raft.SnapshotStore
	closers []io.Closer
}

// openStores opens the durable stores under dataDir, or memory stores when
// dataDir is empty. The log and stable store is hashicorp/raft-wal (the
// write-ahead log Consul uses), since raft-boltdb/v2 needs a go-metrics
// with the compat package that raft v1.8.0's go-metrics no longer has.
func openStores(dataDir string, logger hclog.Logger) (*stores, error) {
	if dataDir == "" {
		mem := raft.NewInmemStore()
		return &stores{logs: mem, stable: mem, snaps: raft.NewInmemSnapshotStore()}, nil
	}
	dir := filepath.Join(dataDir, "raft")
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
		return nil, fmt.Errorf("creating the geo raft directory: %w", err)
	}
	// raft-wal v0.4.0's Close leaves its metadata database open (and
	// locked), so the manager opens and closes it itself: an agent that
	// reopens its store in the same process would wait forever otherwise.
	meta := &metadb.BoltMetaDB{}
	// Geo entries are a few hundred bytes: small segments, not the 64 MiB
	// preallocated by default.
	w, err := wal.Open(filepath.Join(dir, "wal"), wal.WithSegmentSize(4<<20), wal.WithLogger(logger.Named("wal")), wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("opening the geo raft log in %s: %w", dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger.Named("snapshots"))
	if err != nil {
		w.Close()
		meta.Close()
		return nil, fmt.Errorf("opening the geo snapshots in %s: %w", dir, err)
	}
	return &stores{logs: w, stable: w, snaps: snaps, closers: []io.Closer{w, meta}}, nil
}

func (s *stores) close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// knowledge is what this site last derived about its own service: the mode
// it knows and how long it may keep serving. It is kept on disk so that a
// restarted agent that cannot reach a majority still stops in time, and it
// is what the site acknowledges to the others (a site acknowledges auto
// mode only once its deadline under auto mode is on disk).
type knowledge struct {
	Site     string    `json:"site"`
	Index    uint64    `json:"index"`
	Mode     Mode      `json:"mode"`
	Limited  bool      `json:"limited"`
	Deadline time.Time `json:"deadline,omitzero"`
}

// same reports whether k and o say the same thing.
func (k knowledge) same(o knowledge) bool {
	return k.Site == o.Site && k.Mode == o.Mode && k.Limited == o.Limited && k.Deadline.Equal(o.Deadline)
}

// deriveKnowledge computes site's knowledge from st.
func deriveKnowledge(st *State, site string, margin time.Duration) knowledge {
	k := knowledge{Site: site, Index: st.Index, Mode: st.Mode, Limited: true}
	if st.Initialized && st.Service == site {
		k.Deadline, k.Limited = st.serviceDeadline(site, margin)
	}
	return k
}

const knowledgeFile = "service.json"

// loadKnowledge reads the knowledge file; a missing or unreadable one is
// no knowledge (the caller then stops serving unless told otherwise).
func loadKnowledge(dataDir, site string) (knowledge, error) {
	if dataDir == "" {
		return knowledge{}, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, knowledgeFile))
	if errors.Is(err, fs.ErrNotExist) {
		return knowledge{}, nil
	}
	if err != nil {
		return knowledge{}, fmt.Errorf("reading the geo service deadline: %w", err)
	}
	var k knowledge
	if err := json.Unmarshal(b, &k); err != nil {
		return knowledge{}, fmt.Errorf("the geo service deadline file %s is corrupt (%v); it is ignored", filepath.Join(dataDir, knowledgeFile), err)
	}
	if k.Site != site {
		return knowledge{}, nil
	}
	return k, nil
}

// saveKnowledge writes k durably: a temporary file, fsync, rename, fsync
// of the directory.
func saveKnowledge(dataDir string, k knowledge) error {
	if dataDir == "" {
		return nil
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encoding the geo service deadline: %w", err)
	}
	path := filepath.Join(dataDir, knowledgeFile)
	tmp, err := os.CreateTemp(dataDir, knowledgeFile+".*")
	if err != nil {
		return fmt.Errorf("writing the geo service deadline: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the geo service deadline: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing the geo service deadline: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the geo service deadline: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing the geo service deadline: %w", err)
	}
	if d, err := os.Open(dataDir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
