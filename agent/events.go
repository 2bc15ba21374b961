package agent

import (
	"sync"

	"github.com/hatui/hatui/protocol"
)

// eventLog is a bounded, numbered log of events with change
// notification. Numbering lets each watcher ask for exactly what it has
// not seen; notification never blocks the agent on a slow watcher.
type eventLog struct {
	mu   sync.Mutex
	max  int
	evs  []protocol.Event
	seq  uint64 // seq of the newest event
	subs map[chan struct{}]struct{}
}

func newEventLog(max int) *eventLog {
	return &eventLog{max: max, subs: map[chan struct{}]struct{}{}}
}

func (l *eventLog) add(e protocol.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	if len(l.evs) > l.max {
		l.evs = append(l.evs[:0:0], l.evs[len(l.evs)-l.max:]...)
	}
	l.seq++
	l.mu.Unlock()
	l.notify()
}

// notify wakes every subscriber without blocking.
func (l *eventLog) notify() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// since returns the events numbered after seq and the newest number.
func (l *eventLog) since(seq uint64) ([]protocol.Event, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.seq - seq
	if seq > l.seq {
		n = 0
	}
	if n > uint64(len(l.evs)) {
		n = uint64(len(l.evs))
	}
	out := make([]protocol.Event, n)
	copy(out, l.evs[uint64(len(l.evs))-n:])
	return out, l.seq
}

// recent returns up to n of the newest events, oldest first.
func (l *eventLog) recent(n int) []protocol.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > len(l.evs) {
		n = len(l.evs)
	}
	return append([]protocol.Event(nil), l.evs[len(l.evs)-n:]...)
}

func (l *eventLog) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}
