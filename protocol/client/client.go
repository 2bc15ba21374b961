// Package client speaks the hatui protocol to one agent over any stream:
// a Unix socket on the node, an SSH-forwarded socket from the NOC, an
// agent-to-agent channel, or an in-process pipe in the demo. The transport
// is the caller's Dial hook, so the client never cares how it got there.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hatui/hatui/protocol"
)

// DialFunc opens a stream to an agent.
type DialFunc func(ctx context.Context) (net.Conn, error)

// UnixDialer returns a DialFunc for an agent's Unix socket.
func UnixDialer(path string) DialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}

// ErrClosed is returned by calls on a closed connection.
var ErrClosed = errors.New("connection to agent closed")

// Options tune a connection.
type Options struct {
	Client    string // e.g. "hatui/0.1"
	User      string // who is asking, for the agent's audit log
	Forwarded string // set by an agent relaying for a client
	// Role is what a relaying agent granted the user (peers only).
	Role protocol.Role
}

// Conn is one protocol session with an agent. Its methods are safe for
// concurrent use; requests are matched to replies by id.
type Conn struct {
	nc      net.Conn
	w       *protocol.Writer
	welcome protocol.Welcome

	nextID atomic.Uint64
	mu     sync.Mutex
	subs   map[uint64]chan protocol.Envelope
	done   chan struct{}
	err    error // why the read loop ended; set before done closes
}

// Connect dials with dial, sends hello and waits for welcome.
func Connect(ctx context.Context, dial DialFunc, opts Options) (*Conn, error) {
	nc, err := dial(ctx)
	if err != nil {
		return nil, &protocol.Error{Code: protocol.CodeUnreachable,
			Message: fmt.Sprintf("connecting to agent: %v", err),
			Hint:    "check that ha-agent runs on the node and that you may open its socket"}
	}
	c, err := Handshake(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// Handshake runs the hello exchange on an open stream and starts the
// reader. It takes ownership of nc.
func Handshake(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	c := &Conn{
		nc:   nc,
		w:    protocol.NewWriter(nc),
		subs: map[uint64]chan protocol.Envelope{},
		done: make(chan struct{}),
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	r := protocol.NewReader(nc)
	if err := c.w.Send(protocol.TypeHello, 0, protocol.Hello{
		Versions: protocol.SupportedVersions, Client: opts.Client, User: opts.User, Forwarded: opts.Forwarded, Role: opts.Role,
	}); err != nil {
		return nil, fmt.Errorf("sending hello: %w", err)
	}
	env, err := r.Read()
	if err != nil {
		if ctx.Err() != nil {
			return nil, &protocol.Error{Code: protocol.CodeUnreachable, Message: "agent did not answer hello in time"}
		}
		return nil, fmt.Errorf("reading welcome: %w", err)
	}
	switch env.Type {
	case protocol.TypeWelcome:
		if err := env.Decode(&c.welcome); err != nil {
			return nil, err
		}
	case protocol.TypeError:
		var pe protocol.Error
		if err := env.Decode(&pe); err != nil {
			return nil, err
		}
		return nil, &pe
	default:
		return nil, fmt.Errorf("expected welcome from agent, got %q", env.Type)
	}
	if !stop() {
		return nil, &protocol.Error{Code: protocol.CodeUnreachable, Message: "agent did not answer hello in time"}
	}
	nc.SetDeadline(timeZero)
	go c.readLoop(r)
	return c, nil
}

// Welcome returns what the agent said when the connection opened.
func (c *Conn) Welcome() protocol.Welcome { return c.welcome }

// Done is closed when the connection ends; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the connection.
func (c *Conn) Close() error { return c.nc.Close() }

func (c *Conn) readLoop(r *protocol.Reader) {
	var err error
	for {
		var env protocol.Envelope
		env, err = r.Read()
		if err != nil {
			if protocol.CodeOf(err) == protocol.CodeBadRequest || protocol.CodeOf(err) == protocol.CodeTooLarge {
				continue // a garbled line from the agent: skip it rather than drop the session
			}
			break
		}
		c.mu.Lock()
		ch := c.subs[env.ID]
		c.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case ch <- env:
		case <-c.done:
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = ErrClosed
	}
	c.err = err
	close(c.done)
}

// request registers a reply channel for a new id and sends the request.
func (c *Conn) request(t protocol.Type, body any, buf int) (uint64, chan protocol.Envelope, error) {
	id := c.nextID.Add(1)
	ch := make(chan protocol.Envelope, buf)
	c.mu.Lock()
	c.subs[id] = ch
	c.mu.Unlock()
	if err := c.w.Send(t, id, body); err != nil {
		c.forget(id)
		return 0, nil, err
	}
	return id, ch, nil
}

func (c *Conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.subs, id)
	c.mu.Unlock()
}

// next waits for the next reply on ch.
func (c *Conn) next(ctx context.Context, ch chan protocol.Envelope) (protocol.Envelope, error) {
	select {
	case env := <-ch:
		return env, nil
	case <-c.done:
		return protocol.Envelope{}, c.err
	case <-ctx.Done():
		return protocol.Envelope{}, &protocol.Error{Code: protocol.CodeUnreachable,
			Message: fmt.Sprintf("agent %s did not answer in time: %v", c.welcome.Node, ctx.Err())}
	}
}

// Status asks for a snapshot: of the whole deployment when node is "", or
// of the named node's own agent.
func (c *Conn) Status(ctx context.Context, node string) (*protocol.Snapshot, error) {
	return c.StatusRequest(ctx, protocol.StatusRequest{Node: node})
}

// StatusRequest asks for a snapshot with every option of the request.
func (c *Conn) StatusRequest(ctx context.Context, req protocol.StatusRequest) (*protocol.Snapshot, error) {
	id, ch, err := c.request(protocol.TypeStatus, req, 1)
	if err != nil {
		return nil, err
	}
	defer c.forget(id)
	env, err := c.next(ctx, ch)
	if err != nil {
		return nil, err
	}
	return decodeSnapshot(env)
}

// History asks for the deployment's past events and audit entries.
func (c *Conn) History(ctx context.Context, req protocol.HistoryRequest) (*protocol.History, error) {
	id, ch, err := c.request(protocol.TypeHistory, req, 1)
	if err != nil {
		return nil, err
	}
	defer c.forget(id)
	env, err := c.next(ctx, ch)
	if err != nil {
		return nil, err
	}
	switch env.Type {
	case protocol.TypeHistory:
		var h protocol.History
		if err := env.Decode(&h); err != nil {
			return nil, err
		}
		return &h, nil
	case protocol.TypeError:
		return nil, decodeError(env)
	}
	return nil, fmt.Errorf("expected a history from agent, got %q", env.Type)
}

func decodeSnapshot(env protocol.Envelope) (*protocol.Snapshot, error) {
	switch env.Type {
	case protocol.TypeSnapshot:
		var s protocol.Snapshot
		if err := env.Decode(&s); err != nil {
			return nil, err
		}
		return &s, nil
	case protocol.TypeError:
		return nil, decodeError(env)
	}
	return nil, fmt.Errorf("expected a snapshot from agent, got %q", env.Type)
}

func decodeError(env protocol.Envelope) error {
	var pe protocol.Error
	if err := env.Decode(&pe); err != nil {
		return err
	}
	return &pe
}

// Watch returns the current snapshot and a channel of changes. The channel
// closes when ctx ends or the connection drops; Err then says why.
func (c *Conn) Watch(ctx context.Context) (*protocol.Snapshot, <-chan protocol.Change, error) {
	return c.WatchScope(ctx, protocol.ScopeDeployment)
}

// WatchScope is Watch with a scope: agents watch each other's own state
// with protocol.ScopeNode.
func (c *Conn) WatchScope(ctx context.Context, scope protocol.Scope) (*protocol.Snapshot, <-chan protocol.Change, error) {
	var body any
	if scope != "" {
		body = protocol.WatchRequest{Scope: scope}
	}
	id, ch, err := c.request(protocol.TypeWatch, body, 64)
	if err != nil {
		return nil, nil, err
	}
	env, err := c.next(ctx, ch)
	if err != nil {
		c.forget(id)
		return nil, nil, err
	}
	snap, err := decodeSnapshot(env)
	if err != nil {
		c.forget(id)
		return nil, nil, err
	}
	out := make(chan protocol.Change)
	go c.deliver(ctx, id, ch, out)
	return snap, out, nil
}

// maxFoldedEvents bounds the events kept for a watcher that is not
// reading; the oldest go first.
const maxFoldedEvents = 1000

// deliver passes a watch's changes to out. It is always ready to take the
// next change from the connection, so a watcher that stops reading never
// stalls the replies to other requests: while out is not read, changes
// fold into one (events appended, the newest snapshot kept), which loses
// nothing because every change carries the whole state.
func (c *Conn) deliver(ctx context.Context, id uint64, in chan protocol.Envelope, out chan<- protocol.Change) {
	defer close(out)
	defer c.forget(id)
	var pending *protocol.Change
	for {
		var send chan<- protocol.Change
		var next protocol.Change
		if pending != nil {
			send, next = out, *pending
		}
		select {
		case env := <-in:
			if env.Type != protocol.TypeChange {
				continue
			}
			var ch protocol.Change
			if env.Decode(&ch) != nil {
				continue
			}
			if pending == nil {
				pending = &ch
				continue
			}
			pending.Seq = ch.Seq
			pending.Snapshot = ch.Snapshot
			pending.Events = append(pending.Events, ch.Events...)
			if n := len(pending.Events); n > maxFoldedEvents {
				pending.Events = append([]protocol.Event(nil), pending.Events[n-maxFoldedEvents:]...)
			}
		case send <- next:
			pending = nil
		case <-c.done:
			return
		case <-ctx.Done():
			c.w.Send(protocol.TypeUnwatch, id, nil)
			return
		}
	}
}

// Do runs an action and returns its result. progress, if not nil, is
// called for each progress report. A refusal is returned as an *Error
// with the agent's code (usually CodeRefused); a failed result as an
// *Error with CodeFailed unless the agent said otherwise.
func (c *Conn) Do(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error) {
	id, ch, err := c.request(protocol.TypeAction, a, 16)
	if err != nil {
		return protocol.Result{}, err
	}
	defer c.forget(id)
	for {
		env, err := c.next(ctx, ch)
		if err != nil {
			return protocol.Result{}, err
		}
		switch env.Type {
		case protocol.TypeAccepted:
		case protocol.TypeProgress:
			var p protocol.Progress
			if env.Decode(&p) == nil && progress != nil {
				progress(p)
			}
		case protocol.TypeRefused:
			var r protocol.Refused
			if err := env.Decode(&r); err != nil {
				return protocol.Result{}, err
			}
			return protocol.Result{OK: false, Message: r.Message, Error: &r.Error}, &r.Error
		case protocol.TypeError:
			return protocol.Result{}, decodeError(env)
		case protocol.TypeResult:
			var res protocol.Result
			if err := env.Decode(&res); err != nil {
				return protocol.Result{}, err
			}
			if !res.OK {
				pe := res.Error
				if pe == nil {
					pe = &protocol.Error{Code: protocol.CodeFailed, Message: res.Message}
				}
				return res, pe
			}
			return res, nil
		}
	}
}

var timeZero = time.Time{}
