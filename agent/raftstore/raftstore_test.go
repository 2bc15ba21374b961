package raftstore

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestReopenKeepsLogAndDoesNotHang checks what the metadata workaround is
// for: a store closed and reopened in the same process opens (instead of
// waiting on its own lock) and still holds what was written.
func TestReopenKeepsLogAndDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Logs.StoreLog(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stable.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var l raft.Log
	if err := s.Logs.GetLog(1, &l); err != nil || string(l.Data) != "x" {
		t.Fatalf("log after reopen: %+v, %v", l, err)
	}
	if term, err := s.Stable.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("term after reopen: %d, %v", term, err)
	}
}

func TestEmptyDirMeansMemory(t *testing.T) {
	s, err := Open("", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Logs.(*raft.InmemStore); !ok {
		t.Fatalf("empty dir gave %T, want memory", s.Logs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
