package geo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/protocol"
)

// maxSnapshotBytes bounds a snapshot read back; a real one is a few KiB.
const maxSnapshotBytes = 16 << 20

// signal wakes every goroutine waiting on it: wait returns a channel that
// is closed at the next notify.
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
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// fsm is the raft state machine holding the geo [State].
type fsm struct {
	mu      sync.Mutex
	st      *State
	changed *signal
	log     *slog.Logger
}

func newFSM(changed *signal, log *slog.Logger) *fsm {
	return &fsm{st: &State{Version: stateVersion}, changed: changed, log: log}
}

// state returns a copy of the current state.
func (f *fsm) state() *State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.clone()
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	res := f.applyEntry(l.Index, l.Data)
	if res.Err != nil && res.Err.Code != protocol.CodeRefused && res.Err.Code != protocol.CodeBusy {
		f.log.Warn("geo: log entry not applied", "index", l.Index, "error", res.Err)
	}
	f.changed.notify()
	return res
}

// applyEntry decodes and applies one entry. A corrupt entry, a refused one
// and even a bug in a rule leave the state as it was.
func (f *fsm) applyEntry(index uint64, data []byte) (res *applyResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() {
		if index > f.st.Index {
			f.st.Index = index
		}
		res.Index = index
	}()
	c, err := decodeCommand(data)
	if err != nil {
		return &applyResult{Err: protocol.Errorf(protocol.CodeBadRequest, "", "%v", err)}
	}
	next := f.st.clone()
	res = safeApply(next, c)
	if res.Err != nil {
		return res
	}
	if err := next.check(); err != nil {
		return &applyResult{Err: protocol.Errorf(protocol.CodeInternal, "this is a bug in the geo manager; the entry was ignored",
			"geo %s entry would break the state: %v", c.Op, err)}
	}
	f.st = next
	return res
}

// safeApply runs a rule, turning a panic (a bug) into an error so that one
// bad entry cannot take every voter down at once.
func safeApply(s *State, c *command) (res *applyResult) {
	defer func() {
		if r := recover(); r != nil {
			res = &applyResult{Err: protocol.Errorf(protocol.CodeInternal, "this is a bug in the geo manager; the entry was ignored",
				"geo %s entry panicked: %v", c.Op, r)}
		}
	}()
	return s.apply(c)
}

// precheck tells what applying data would give, without changing anything.
// The leader uses it to refuse without writing a log entry.
func (f *fsm) precheck(data []byte) *applyResult {
	c, err := decodeCommand(data)
	if err != nil {
		return &applyResult{Err: protocol.Errorf(protocol.CodeBadRequest, "", "%v", err)}
	}
	return safeApply(f.state(), c)
}

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	b, err := json.Marshal(f.state())
	if err != nil {
		return nil, fmt.Errorf("encoding the geo state for a snapshot: %w", err)
	}
	return fsmSnapshot(b), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("reading a geo snapshot: %w", err)
	}
	st, err := decodeState(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	f.changed.notify()
	return nil
}

// decodeState parses and checks a snapshot.
func decodeState(b []byte) (*State, error) {
	if len(b) > maxSnapshotBytes {
		return nil, fmt.Errorf("geo snapshot is over %d bytes", maxSnapshotBytes)
	}
	var st State
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&st); err != nil {
		return nil, fmt.Errorf("geo snapshot is not valid JSON: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("geo snapshot has data after its JSON object")
	}
	if st.Version < 1 || st.Version > stateVersion {
		return nil, fmt.Errorf("geo snapshot has format version %d, this agent knows 1 to %d: upgrade this agent", st.Version, stateVersion)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("geo snapshot is inconsistent: %w", err)
	}
	return &st, nil
}

// fsmSnapshot is an encoded state.
type fsmSnapshot []byte

// Persist implements raft.FSMSnapshot.
func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("writing a geo snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (fsmSnapshot) Release() {}
