package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// raft's stable-store keys (hashicorp/raft does not export them): the
// term and vote a rebuilt log must keep.
var stableKeys = []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"}

// unreadable is the error of a log that cannot be opened or repaired:
// it names the file and says what the operator does.
func unreadable(what, dir, file string, err error) error {
	if file != "" {
		file = filepath.Base(file) + ": "
	}
	return fmt.Errorf("the %s raft log in %s cannot be read (%s%w); stop the agent, move %s aside "+
		"(keep it for a bug report) and start the agent again: it rejoins the other voters with an empty log "+
		"and catches up from them; do this on one voter at a time", what, dir, file, err, dir)
}

// finishRebuild completes or discards a rebuild interrupted by a crash:
// wal.new is complete only once wal has been renamed away.
func finishRebuild(walDir string) error {
	newDir := walDir + ".new"
	if _, err := os.Stat(newDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(walDir); errors.Is(err, os.ErrNotExist) {
		return os.Rename(newDir, walDir)
	}
	return os.RemoveAll(newDir)
}

// segmentState reads walDir's metadata without opening the log.
func segmentState(walDir string) (types.PersistentState, error) {
	meta := &metadb.BoltMetaDB{}
	defer meta.Close()
	return meta.Load(walDir)
}

// needsRebuild reports whether a sealed segment has no index block:
// what raft-wal v0.4.0 leaves when raft clears a log suffix (hashicorp/
// raft-wal#31, fixed upstream in v0.4.1, which needs a go-metrics this
// module cannot take). Such a log reads in the process that wrote it
// and panics raft.NewRaft at every later start.
func needsRebuild(st types.PersistentState) bool {
	for _, s := range st.Segments {
		if !s.SealTime.IsZero() && s.IndexStart == 0 {
			return true
		}
	}
	return false
}

// readSegment returns the entries of one segment, lo..hi as the metadata
// bounds them (hi 0: up to the last committed frame of an open tail).
func readSegment(f *segment.Filer, s types.SegmentInfo, fn func(*raft.Log) error) error {
	var r types.SegmentReader
	hi := s.MaxIndex
	if !s.SealTime.IsZero() && s.IndexStart != 0 {
		sr, err := f.Open(s)
		if err != nil {
			return err
		}
		r = sr
	} else {
		// Read like a tail after a crash: through the frames, up to the
		// last commit.
		sw, err := f.RecoverTail(s)
		if errors.Is(err, os.ErrNotExist) && s.SealTime.IsZero() {
			return nil // crashed before the tail's file was created
		}
		if err != nil {
			return err
		}
		r = sw
		if last := sw.LastIndex(); s.SealTime.IsZero() || last < hi {
			hi = last
		}
	}
	defer r.Close()
	var codec wal.BinaryCodec
	for i := max(s.MinIndex, s.BaseIndex); hi > 0 && i <= hi; i++ {
		buf, err := r.GetLog(i)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		var l raft.Log
		err = codec.Decode(buf.Bs, &l)
		buf.Close()
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if err := fn(&l); err != nil {
			return err
		}
	}
	return nil
}

// rebuild writes every entry of walDir, and raft's term and vote, into a
// fresh log and puts it in walDir's place; the old one is kept beside
// it as wal.damaged-<time>.
func rebuild(what, dir, walDir string, st types.PersistentState, logger hclog.Logger) error {
	newDir := walDir + ".new"
	if err := os.RemoveAll(newDir); err != nil {
		return err
	}
	if err := os.MkdirAll(newDir, 0o700); err != nil {
		return err
	}
	nmeta := &metadb.BoltMetaDB{}
	nw, err := wal.Open(newDir, wal.WithSegmentSize(segmentSize), wal.WithLogger(logger), wal.WithMetaStore(nmeta))
	if err != nil {
		nmeta.Close()
		return err
	}
	closeNew := func() { nw.Close(); nmeta.Close() }

	ometa := &metadb.BoltMetaDB{}
	if _, err := ometa.Load(walDir); err != nil {
		closeNew()
		return unreadable(what, dir, "wal-meta.db", err)
	}
	for _, k := range stableKeys {
		v, err := ometa.GetStable([]byte(k))
		if err == nil && v != nil {
			err = nmeta.SetStable([]byte(k), v)
		}
		if err != nil {
			ometa.Close()
			closeNew()
			return unreadable(what, dir, "wal-meta.db", err)
		}
	}
	ometa.Close()

	f := segment.NewFiler(walDir, fs.New())
	var batch []*raft.Log
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := nw.StoreLogs(batch)
		batch = batch[:0]
		return err
	}
	copied := 0
	for _, s := range st.Segments {
		err := readSegment(f, s, func(l *raft.Log) error {
			batch = append(batch, l)
			copied++
			if len(batch) == 256 {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			closeNew()
			return unreadable(what, dir, segment.FileName(s), err)
		}
	}
	closeNew()
	old := fmt.Sprintf("%s.damaged-%s", walDir, time.Now().UTC().Format("20060102T150405"))
	if err := os.Rename(walDir, old); err != nil {
		return err
	}
	if err := os.Rename(newDir, walDir); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(walDir)); err == nil {
		d.Sync()
		d.Close()
	}
	logger.Warn("rebuilt a raft log whose sealed segment had no index block", "entries", copied, "kept", old)
	return nil
}

// verify reads every entry w holds, so a log raft cannot read fails
// here with the file named instead of panicking raft.NewRaft.
func verify(what, dir string, w *wal.WAL) error {
	first, err := w.FirstIndex()
	if err != nil {
		return unreadable(what, dir, "", err)
	}
	last, err := w.LastIndex()
	if err != nil {
		return unreadable(what, dir, "", err)
	}
	for i := first; first > 0 && i <= last; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			return unreadable(what, dir, fileOf(filepath.Join(dir, "wal"), i), fmt.Errorf("entry %d: %w", i, err))
		}
	}
	return nil
}

// fileOf names the segment holding entry i, or "".
func fileOf(walDir string, i uint64) string {
	st, err := segmentState(walDir)
	if err != nil {
		return ""
	}
	name := ""
	for _, s := range st.Segments {
		if s.BaseIndex <= i {
			name = segment.FileName(s)
		}
	}
	return name
}

// checkSegments opens every sealed segment the metadata lists, so a
// missing or emptied one is named.
func checkSegments(what, dir, walDir string, st types.PersistentState) error {
	f := segment.NewFiler(walDir, fs.New())
	for _, s := range st.Segments {
		if s.SealTime.IsZero() {
			continue
		}
		r, err := f.Open(s)
		if err != nil {
			return unreadable(what, dir, segment.FileName(s), err)
		}
		r.Close()
	}
	return nil
}
