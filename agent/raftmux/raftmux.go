// Package raftmux splits one raft.StreamLayer into raft's own
// connections and the requests a follower forwards to the leader, so
// that both travel over one authenticated channel (as Consul does with
// its RPC type byte). The failover engine and the geo manager each run
// one.
//
// A dialer writes one kind byte on a new connection: KindRaft, or the
// forward kind its user chose. Anything else is closed.
package raftmux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// KindRaft marks a connection for raft's NetworkTransport.
const KindRaft byte = 'R'

// ErrClosed is returned by Accept once the layer or the mux is closed.
var ErrClosed = errors.New("raft transport is closed")

// Mux is one stream layer split by the kind byte.
type Mux struct {
	inner   raft.StreamLayer
	name    string // for errors: "failover", "geo"
	forward byte
	timeout time.Duration
	raftCh  chan net.Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // connections not yet handed to raft
}

// New splits inner. forward is the kind byte of forwarded requests;
// timeout bounds reading the kind byte, writing it, and handing a raft
// connection to an Accept.
func New(inner raft.StreamLayer, name string, forward byte, timeout time.Duration) *Mux {
	return &Mux{inner: inner, name: name, forward: forward, timeout: timeout,
		raftCh: make(chan net.Conn), done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
}

// Start accepts connections and calls handle, in its own goroutine, for
// each forwarded request; handle must close the conn.
func (m *Mux) Start(handle func(net.Conn)) {
	m.wg.Add(1)
	go m.acceptLoop(handle)
}

func (m *Mux) acceptLoop(handle func(net.Conn)) {
	defer m.wg.Done()
	for {
		c, err := m.inner.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			case <-time.After(50 * time.Millisecond):
				// A failed accept (a bad handshake, a file descriptor
				// limit) must not stop the others.
				continue
			}
		}
		if !m.track(c) {
			c.Close()
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(c, handle)
		}()
	}
}

// track registers c so that Close can end it; false once closed.
func (m *Mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns == nil {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *Mux) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conns, c)
}

func (m *Mux) route(c net.Conn, handle func(net.Conn)) {
	var kind [1]byte
	c.SetReadDeadline(time.Now().Add(m.timeout))
	if _, err := io.ReadFull(c, kind[:]); err != nil {
		m.untrack(c)
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch kind[0] {
	case KindRaft:
		m.untrack(c) // raft owns it now
		select {
		case m.raftCh <- c:
		case <-m.done:
			c.Close()
		case <-time.After(m.timeout):
			c.Close() // no raft instance is accepting (recovering)
		}
	case m.forward:
		defer m.untrack(c)
		handle(c)
	default:
		m.untrack(c)
		c.Close()
	}
}

// Close stops accepting, closes the inner layer and every connection not
// owned by raft, and waits for the handlers.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		err = m.inner.Close()
		m.mu.Lock()
		for c := range m.conns {
			c.Close()
		}
		m.conns = nil
		m.mu.Unlock()
	})
	m.wg.Wait()
	return err
}

// DialForward opens a connection for a forwarded request.
func (m *Mux) DialForward(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return m.dial(addr, timeout, m.forward)
}

func (m *Mux) dial(addr raft.ServerAddress, timeout time.Duration, kind byte) (net.Conn, error) {
	c, err := m.inner.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("opening a %s connection to %s: %w", m.name, addr, err)
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}

// Layer returns the stream layer one raft instance sees. Closing it stops
// its Accept only, so that a raft shut down (for a recovery) does not cut
// the mux or a reply being sent; the next instance gets a new layer.
func (m *Mux) Layer() raft.StreamLayer {
	return &layer{m: m, closed: make(chan struct{})}
}

type layer struct {
	m      *Mux
	closed chan struct{}
	once   sync.Once
}

// Accept implements net.Listener.
func (l *layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftCh:
		return c, nil
	case <-l.closed:
		return nil, ErrClosed
	case <-l.m.done:
		return nil, ErrClosed
	}
}

// Close implements net.Listener; the mux stays open.
func (l *layer) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr implements net.Listener.
func (l *layer) Addr() net.Addr { return l.m.inner.Addr() }

// Dial implements raft.StreamLayer.
func (l *layer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.m.dial(addr, timeout, KindRaft)
}
