package failover

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/protocol"
)

// signal wakes waiters on every change: wait returns a channel closed at
// the next notify.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

// fsm is the raft state machine around State.
type fsm struct {
	changed *signal

	mu sync.RWMutex
	st *State
}

func newFSM(changed *signal) *fsm {
	if changed == nil {
		changed = newSignal()
	}
	return &fsm{changed: changed, st: newState()}
}

// state returns a copy of the current state.
func (f *fsm) state() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.clone()
}

// appliedIndex is the raft index of the last command applied here.
func (f *fsm) appliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Index
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	c, err := decodeCommand(l.Data)
	if err != nil {
		return result{Err: protocol.Errorf(protocol.CodeBadRequest, "", "%v", err), Index: l.Index}
	}
	f.mu.Lock()
	res := f.st.apply(c)
	f.st.Index = l.Index
	f.mu.Unlock()
	res.Index = l.Index
	f.changed.notify()
	return res
}

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	b, err := json.Marshal(f.st)
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("encoding the failover state: %w", err)
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	st := newState()
	if err := json.NewDecoder(r).Decode(st); err != nil {
		return fmt.Errorf("decoding a failover state snapshot: %w", err)
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*NodeRecord{}
	}
	if st.Actions == nil {
		st.Actions = map[uint64]*ActionRecord{}
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	f.changed.notify()
	return nil
}

type snapshot []byte

// Persist implements raft.FSMSnapshot.
func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s snapshot) Release() {}
