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

// segmentSize is the size of one log segment. Decision entries are a
// few hundred bytes: small segments, not the 64 MiB raft-wal
// preallocates by default. Tests make it smaller to seal segments.
var segmentSize = 4 << 20

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
	walDir := filepath.Join(dir, "wal")
	if err := finishRebuild(walDir); err != nil {
		return nil, fmt.Errorf("finishing an interrupted rebuild of the %s raft log in %s: %w", what, dir, err)
	}
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the %s raft directory: %w", what, err)
	}
	// A kill -9 in the middle of a write leaves a torn tail, which
	// raft-wal recovers by itself (up to the last whole batch). What it
	// does not recover is a sealed segment without its index block;
	// such a log is rebuilt here. Anything else that cannot be read is
	// refused with the file named and the remedy, never left for
	// raft.NewRaft to panic on at every start.
	st, err := segmentState(walDir)
	if err != nil {
		return nil, unreadable(what, dir, "wal-meta.db", err)
	}
	if needsRebuild(st) {
		if err := rebuild(what, dir, walDir, st, logger.Named("wal")); err != nil {
			return nil, err
		}
	} else if err := checkSegments(what, dir, walDir, st); err != nil {
		return nil, err
	}
	// raft-wal v0.4.0's Close leaves its bolt metadata database open,
	// and with it the file lock: a store reopened in the same process
	// would wait forever. Owning the metadata database closes it too.
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir, wal.WithSegmentSize(segmentSize), wal.WithLogger(logger.Named("wal")), wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, unreadable(what, dir, "", err)
	}
	if err := verify(what, dir, w); err != nil {
		w.Close()
		meta.Close()
		return nil, err
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
