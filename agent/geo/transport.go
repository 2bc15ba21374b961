package geo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/protocol"
)

// Connection kinds: the first byte a dialer writes on a new connection,
// so that raft and the geo manager's own requests share one listener (as
// Consul does with its RPC type byte).
const (
	connRaft    byte = 'R'
	connForward byte = 'G'
)

// maxForwardBytes bounds one forwarded request or reply.
const maxForwardBytes = 1 << 20

var errMuxClosed = errors.New("geo transport is closed")

// NewTCPStreamLayer listens on bind (host:port) and dials other voters over
// plain TCP. advertise is the address the other voters dial to reach this
// one; nil means the listener's own address. The agent normally wraps its
// authenticated channel in a raft.StreamLayer instead: plain TCP lets
// anyone who can connect confirm a failover.
func NewTCPStreamLayer(bind string, advertise net.Addr) (raft.StreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listening for geo voters on %s: %w", bind, err)
	}
	return &tcpLayer{Listener: ln, advertise: advertise}, nil
}

type tcpLayer struct {
	net.Listener
	advertise net.Addr
}

// Dial implements raft.StreamLayer.
func (t *tcpLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", string(addr))
}

// Addr implements net.Listener.
func (t *tcpLayer) Addr() net.Addr {
	if t.advertise != nil {
		return t.advertise
	}
	return t.Listener.Addr()
}

// mux splits one stream layer into raft's connections and forwarded geo
// requests.
type mux struct {
	inner   raft.StreamLayer
	timeout time.Duration
	raftCh  chan net.Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // connections not yet handed to raft
}

func newMux(inner raft.StreamLayer, timeout time.Duration) *mux {
	return &mux{inner: inner, timeout: timeout, raftCh: make(chan net.Conn), done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
}

// start accepts connections and hands forwarded requests to handle.
func (m *mux) start(handle func(net.Conn)) {
	m.wg.Add(1)
	go m.acceptLoop(handle)
}

func (m *mux) acceptLoop(handle func(net.Conn)) {
	defer m.wg.Done()
	for {
		c, err := m.inner.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			case <-time.After(50 * time.Millisecond):
				// A failed accept (a bad handshake in the lead's layer, a
				// file descriptor limit) must not stop the others.
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

// track registers c so that close can end it; false once closed.
func (m *mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns == nil {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *mux) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conns, c)
}

func (m *mux) route(c net.Conn, handle func(net.Conn)) {
	var kind [1]byte
	c.SetReadDeadline(time.Now().Add(m.timeout))
	if _, err := io.ReadFull(c, kind[:]); err != nil {
		m.untrack(c)
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch kind[0] {
	case connRaft:
		m.untrack(c)
		select {
		case m.raftCh <- c:
		case <-m.done:
			c.Close()
		}
	case connForward:
		defer m.untrack(c)
		handle(c)
	default:
		m.untrack(c)
		c.Close()
	}
}

// close stops accepting, closes the inner layer and every connection not
// owned by raft, and waits for the handlers.
func (m *mux) close() error {
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

// dial opens a connection of the given kind.
func (m *mux) dial(addr raft.ServerAddress, timeout time.Duration, kind byte) (net.Conn, error) {
	c, err := m.inner.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("opening a geo connection to %s: %w", addr, err)
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}

// raftLayer is the stream layer raft's NetworkTransport sees.
type raftLayer struct{ m *mux }

// Accept implements net.Listener.
func (r raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-r.m.raftCh:
		return c, nil
	case <-r.m.done:
		return nil, errMuxClosed
	}
}

// Close implements net.Listener. The mux stays open for the manager to
// close, so that a raft shutdown does not cut a reply being sent.
func (r raftLayer) Close() error { return nil }

// Addr implements net.Listener.
func (r raftLayer) Addr() net.Addr { return r.m.inner.Addr() }

// Dial implements raft.StreamLayer.
func (r raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return r.m.dial(addr, timeout, connRaft)
}

// forwardRequest asks the leader to apply an entry. The leader stamps the
// time.
type forwardRequest struct {
	From string   `json:"from"`
	Cmd  *command `json:"cmd"`
	// Deadline is when the proposer stops waiting; the leader does not
	// try to commit past it.
	Deadline time.Time `json:"deadline,omitzero"`
}

// forwardReply is the leader's answer.
type forwardReply struct {
	NotLeader bool            `json:"not_leader,omitempty"`
	Unknown   bool            `json:"unknown,omitempty"` // Err: the entry may or may not be committed
	Result    *applyResult    `json:"result,omitempty"`
	Err       *protocol.Error `json:"error,omitempty"`
}

// errNoAnswer marks a forwarded request that may have reached the leader
// but got no answer: it may or may not have taken effect, so it must not
// be sent again blindly.
var errNoAnswer = errors.New("the geo leader did not answer")

// forward sends req to the voter at addr and returns its reply. An error
// wrapping errNoAnswer means the request may have been applied.
func (m *mux) forward(ctx context.Context, addr raft.ServerAddress, req forwardRequest) (*forwardReply, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(m.timeout)
	}
	c, err := m.dial(addr, time.Until(deadline), connForward)
	if err != nil {
		return nil, fmt.Errorf("dialling the geo leader at %s: %w", addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetDeadline(deadline)
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("sending to the geo leader at %s: %w (%w)", addr, errNoAnswer, err)
	}
	var rep forwardReply
	if err := json.NewDecoder(io.LimitReader(c, maxForwardBytes)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("reading the reply of the geo leader at %s: %w (%w)", addr, errNoAnswer, err)
	}
	return &rep, nil
}

// serveForward answers one forwarded request on c.
func serveForward(c net.Conn, timeout time.Duration, apply func(context.Context, *command) (*forwardReply, error)) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var req forwardRequest
	rep := &forwardReply{}
	if err := json.NewDecoder(io.LimitReader(c, maxForwardBytes)).Decode(&req); err != nil || req.Cmd == nil {
		rep.Err = protocol.Errorf(protocol.CodeBadRequest, "", "geo forward request is not valid: %v", err)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if !req.Deadline.IsZero() {
			var c2 context.CancelFunc
			ctx, c2 = context.WithDeadline(ctx, req.Deadline)
			defer c2()
		}
		r, err := apply(ctx, req.Cmd)
		cancel()
		if err != nil {
			var ou outcomeUnknown
			rep.Err, rep.Unknown = protocol.AsError(err), errors.As(err, &ou)
		} else {
			rep = r
		}
	}
	json.NewEncoder(c).Encode(rep)
}
