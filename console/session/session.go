// Package session keeps the console connected to a deployment. It holds
// one watch open through an entry agent; when that agent stops answering
// it moves to another member it learned from the snapshots, by itself, and
// says that it did. Actions go through whichever agent is current.
package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// ConnState says which agent the console talks through.
type ConnState struct {
	Via       string // node name of the agent, or the entry target before the first welcome
	Connected bool
	Note      string // what happened, for the operator
}

// Options configure a session.
type Options struct {
	// Entry is the first agent to reach, named as the operator typed it.
	Entry     string
	EntryDial client.DialFunc
	// Resolve returns a way to reach another node's agent learned from a
	// snapshot, or false when it cannot be reached from here.
	Resolve func(protocol.Node) (client.DialFunc, bool)
	Client  client.Options
	// Callbacks; each is called from the session's goroutine.
	OnSnapshot func(*protocol.Snapshot)
	OnChange   func(protocol.Change)
	OnConn     func(ConnState)
	// DialTimeout bounds one connection attempt (default 5 s).
	DialTimeout time.Duration
	// Retry is the pause after every candidate failed (default 1 s).
	Retry time.Duration
}

// Session is a self-healing connection to a deployment.
type Session struct {
	o Options

	mu   sync.Mutex
	conn *client.Conn
	last *protocol.Snapshot
}

// New returns a session; Run starts it.
func New(o Options) *Session {
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Retry == 0 {
		o.Retry = time.Second
	}
	if o.OnConn == nil {
		o.OnConn = func(ConnState) {}
	}
	if o.OnSnapshot == nil {
		o.OnSnapshot = func(*protocol.Snapshot) {}
	}
	if o.OnChange == nil {
		o.OnChange = func(protocol.Change) {}
	}
	return &Session{o: o}
}

type candidate struct {
	name string
	dial client.DialFunc
}

// candidates lists where to try next: the entry first the first time,
// then every node alive in the last snapshot other than the one just
// lost, then the entry again.
func (s *Session) candidates(lost string) []candidate {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	var out []candidate
	if last == nil {
		return []candidate{{s.o.Entry, s.o.EntryDial}}
	}
	for _, n := range last.Nodes() {
		if n.Name == lost || n.Member != protocol.MemberAlive || s.o.Resolve == nil {
			continue
		}
		if d, ok := s.o.Resolve(n); ok {
			out = append(out, candidate{n.Name, d})
		}
	}
	return append(out, candidate{s.o.Entry, s.o.EntryDial})
}

// Run keeps the session up until ctx ends.
func (s *Session) Run(ctx context.Context) error {
	lost := ""
	for ctx.Err() == nil {
		connected := false
		for _, c := range s.candidates(lost) {
			if ctx.Err() != nil {
				break
			}
			if lost != "" {
				s.o.OnConn(ConnState{Via: c.name, Note: fmt.Sprintf("%s stopped answering; trying %s", lost, c.name)})
			}
			conn, err := s.connect(ctx, c)
			if err != nil {
				continue
			}
			via := conn.Welcome().Node
			note := "connected through " + via
			if lost != "" && lost != via {
				note = fmt.Sprintf("reconnected through %s after %s stopped answering", via, lost)
			}
			connected = true
			err = s.watch(ctx, conn, note)
			lost = via
			s.o.OnConn(ConnState{Via: via, Connected: false, Note: fmt.Sprintf("lost %s: %v", via, err)})
			break
		}
		if !connected {
			select {
			case <-ctx.Done():
			case <-time.After(s.o.Retry):
			}
		}
	}
	return ctx.Err()
}

func (s *Session) connect(ctx context.Context, c candidate) (*client.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, s.o.DialTimeout)
	defer cancel()
	return client.Connect(dctx, c.dial, s.o.Client)
}

// watch follows one agent until its connection ends.
func (s *Session) watch(ctx context.Context, conn *client.Conn, note string) error {
	defer conn.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	snap, changes, err := conn.Watch(wctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.conn, s.last = conn, snap
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.conn == conn {
			s.conn = nil
		}
		s.mu.Unlock()
	}()
	s.o.OnConn(ConnState{Via: conn.Welcome().Node, Connected: true, Note: note})
	s.o.OnSnapshot(snap)
	for ch := range changes {
		if ch.Snapshot != nil {
			s.mu.Lock()
			s.last = ch.Snapshot
			s.mu.Unlock()
		}
		s.o.OnChange(ch)
	}
	if err := conn.Err(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch ended")
}

// ErrNotConnected is returned by Do while no agent answers.
var ErrNotConnected = &protocol.Error{Code: protocol.CodeUnreachable,
	Message: "not connected to any agent", Hint: "wait for the console to reconnect, then try again"}

// Do runs an action through the current agent.
func (s *Session) Do(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error) {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		return protocol.Result{}, ErrNotConnected
	}
	return conn.Do(ctx, a, progress)
}

// Last returns the newest snapshot, or nil before the first.
func (s *Session) Last() *protocol.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}
