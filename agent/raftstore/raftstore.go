// Package raftstore opens the durable stores behind every raft group of
// the agent (local failover, the geo manager): hashicorp/raft-wal for the
// log and stable store, raft's file snapshots beside it.
//
// raft-wal was chosen over raft-boltdb/v2 because the latter needs a
// go-metrics with the compat package that raft v1.8.0's go-metrics no
// longer has; raft-wal is HashiCorp's own write-ahead log (Consul uses it).
package raftstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// Stores are raft's log, stable and snapshot stores.
type Stores struct {
	Logs   raft.LogStore
	Stable raft.StableStore
	Snaps  raft.SnapshotStore

	closers []io.Closer
}

// Open opens the durable stores in dir, or memory stores when dir is
// empty. what names the raft group in errors ("geo", "failover").
func Open(dir, what string, logger hclog.Logger) (*Stores, error) {
	if dir == "" {
		mem := raft.NewInmemStore()
		return &Stores{Logs: mem, Stable: mem, Snaps: raft.NewInmemSnapshotStore()}, nil
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
		return nil, fmt.Errorf("creating the %s raft directory: %w", what, err)
	}
	// raft-wal v0.4.0's Close leaves its bolt metadata database open,
	// and with it the file lock: a store reopened in the same process
	// would wait forever. Owning the metadata database closes it too.
	meta := &metadb.BoltMetaDB{}
	// Decision entries are a few hundred bytes: small segments, not the
	// 64 MiB preallocated by default.
	w, err := wal.Open(filepath.Join(dir, "wal"), wal.WithSegmentSize(4<<20), wal.WithLogger(logger.Named("wal")), wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("opening the %s raft log in %s (check the directory's disk and permissions): %w", what, dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger.Named("snapshots"))
	if err != nil {
		w.Close()
		meta.Close()
		return nil, fmt.Errorf("opening the %s raft snapshots in %s: %w", what, dir, err)
	}
	return &Stores{Logs: w, Stable: w, Snaps: snaps, closers: []io.Closer{w, meta}}, nil
}

// Close closes the durable stores.
func (s *Stores) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
