package peer

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Stream is a raft.StreamLayer over the peer channel: each raft
// connection is an SSH channel of its own type on the pooled, mutually
// authenticated connection to the other voter. A voter's raft address is
// its peer address, so a raft log needs no listener of its own, and
// nothing about it is reachable without the deployment's gossip key.
type Stream struct {
	srv      *Server
	dialer   *Dialer
	chanType string
	addr     net.Addr

	accept chan net.Conn
	done   chan struct{}
	once   sync.Once
}

// NewStream serves channels of chanType on srv as a stream layer whose
// own address is advertise (this node's peer address as the other voters
// dial it), dialing the others through d. Close stops serving the type;
// srv and d stay open.
func NewStream(srv *Server, d *Dialer, chanType, advertise string) (*Stream, error) {
	a, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, fmt.Errorf("peer stream %s: advertise address %q: %w (want host:port)", chanType, advertise, err)
	}
	s := &Stream{srv: srv, dialer: d, chanType: chanType, addr: a, accept: make(chan net.Conn), done: make(chan struct{})}
	srv.Handle(chanType, s.handle)
	return s, nil
}

// handle hands an accepted channel to Accept. The handler must not return
// before the conn is finished with, so it waits for the conn to close.
func (s *Stream) handle(c net.Conn) {
	w := &waitConn{Conn: c, closed: make(chan struct{})}
	select {
	case s.accept <- w:
	case <-s.done:
		c.Close()
		return
	case <-s.srv.closing:
		c.Close()
		return
	}
	select {
	case <-w.closed:
	case <-s.done:
		c.Close()
	case <-s.srv.closing:
		c.Close()
	}
}

// Accept implements net.Listener.
func (s *Stream) Accept() (net.Conn, error) {
	select {
	case c := <-s.accept:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (s *Stream) Close() error {
	s.once.Do(func() {
		s.srv.Handle(s.chanType, nil)
		close(s.done)
	})
	return nil
}

// Addr implements net.Listener.
func (s *Stream) Addr() net.Addr { return s.addr }

// Dial implements raft.StreamLayer.
func (s *Stream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-s.done:
		return nil, net.ErrClosed
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.dialer.DialChannel(ctx, string(addr), s.chanType)
}

// waitConn tells the server's handler when the conn is closed.
type waitConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (w *waitConn) Close() error {
	w.once.Do(func() { close(w.closed) })
	return w.Conn.Close()
}
