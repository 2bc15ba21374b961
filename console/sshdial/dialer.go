package sshdial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Dialer opens the agent's Unix socket on one node through the node's own
// sshd (direct-streamlocal@openssh.com, what ssh -L local:remote.sock
// uses). One SSH connection, with its jump hosts, carries every stream;
// it is made on first use and again after it dies.
//
// Dial has the signature of protocol/client.DialFunc:
//
//	d, err := sshdial.New("ops@pbx-a1", sshdial.Options{AskUnknown: ask})
//	conn, err := client.Connect(ctx, d.Dial, opts)
type Dialer struct {
	opts     Options
	route    []Hop
	accepted *acceptedKeys // shared with dialers made by For
	sem      chan struct{} // held while connecting; a lock a context can abandon

	mu       sync.Mutex
	cur      *session
	closed   bool
	connects int // SSH connections made, for tests
}

// New resolves target ([user@]host[:port], an ssh_config alias allowed)
// with opts. It does no network I/O: the first Dial connects.
func New(target string, opts Options) (*Dialer, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	route, err := Resolve(target, o)
	if err != nil {
		return nil, err
	}
	for _, h := range route {
		for _, w := range h.Warnings {
			o.logf("sshdial: %s: %s", h, w)
		}
	}
	return &Dialer{opts: o, route: route, accepted: &acceptedKeys{}, sem: make(chan struct{}, 1)}, nil
}

// For returns a Dialer for another node with the same options, for moving
// to another cluster member when this one dies. Host keys accepted during
// this run are trusted by both. The new Dialer has its own connection and
// must be closed on its own.
//
// It never asks about an unknown host key: it is dialled while the screen
// owns the terminal, so such a host is refused (its known_hosts entry is
// the fix) rather than asked about in the middle of the screen.
func (d *Dialer) For(target string) (*Dialer, error) {
	o := d.opts
	o.AskUnknown = nil
	nd, err := New(target, o)
	if err != nil {
		return nil, err
	}
	nd.accepted = d.accepted
	return nd, nil
}

// Route returns the hops, jump hosts first and the node last.
func (d *Dialer) Route() []Hop { return append([]Hop(nil), d.route...) }

// SocketPath is the agent socket opened on the node.
func (d *Dialer) SocketPath() string { return d.opts.SocketPath }

func (d *Dialer) node() Hop { return d.route[len(d.route)-1] }

// Connect makes sure an SSH connection to the node is up, connecting if
// needed, without opening the socket. A console calls it before starting
// its full-screen UI so host key questions are asked on a plain terminal.
func (d *Dialer) Connect(ctx context.Context) error {
	_, _, err := d.session(ctx)
	return err
}

// Dial opens a stream to the agent socket. It reuses the SSH connection
// when it is alive and makes a new one otherwise. ctx bounds connecting
// and opening the stream, not the stream's life.
func (d *Dialer) Dial(ctx context.Context) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		s, fresh, err := d.session(ctx)
		if err != nil {
			return nil, err
		}
		nc, err := s.node().DialContext(ctx, "unix", d.opts.SocketPath)
		if err == nil {
			return nc, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			return nil, d.socketError(ctx, s.node(), oce)
		}
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// The node took the request and never answered: the
				// connection is wedged, do not hand it out again.
				s.end(errors.New("the node did not answer a request to open the agent socket"))
			}
			return nil, &Error{Kind: KindUnreachable, Host: d.node().String(),
				Msg: "the node did not open the agent socket in time", Err: ctx.Err(),
				Hint: "the node or the network to it may be down or overloaded"}
		}
		// The connection died between the check and the request.
		s.end(err)
		if fresh || attempt > 0 {
			return nil, &Error{Kind: KindUnreachable, Host: d.node().String(),
				Msg: "connection lost while opening the agent socket", Err: err}
		}
	}
}

// Close ends the SSH connection and every stream on it. Dial then fails
// with ErrClosed.
func (d *Dialer) Close() error {
	d.mu.Lock()
	d.closed = true
	s := d.cur
	d.cur = nil
	d.mu.Unlock()
	if s != nil {
		s.end(ErrClosed)
	}
	return nil
}

// session is one SSH connection through the route: a client per hop.
type session struct {
	clients []*ssh.Client
	done    chan struct{}
	once    sync.Once
	err     error
}

func (s *session) node() *ssh.Client { return s.clients[len(s.clients)-1] }

func (s *session) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// end closes the connection (node first, then the jumps); err says why.
func (s *session) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
		for i := len(s.clients) - 1; i >= 0; i-- {
			s.clients[i].Close()
		}
	})
}

func (d *Dialer) session(ctx context.Context) (*session, bool, error) {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false, &Error{Kind: KindUnreachable, Host: d.node().String(), Msg: "gave up waiting for the SSH connection", Err: ctx.Err()}
	}
	defer func() { <-d.sem }()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, false, ErrClosed
	}
	if s := d.cur; s != nil && s.alive() {
		d.mu.Unlock()
		return s, false, nil
	}
	d.mu.Unlock()

	s, err := d.connect(ctx)
	if err != nil {
		return nil, false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		s.end(ErrClosed)
		return nil, false, ErrClosed
	}
	d.cur = s
	d.connects++
	return s, true, nil
}

func (d *Dialer) connect(ctx context.Context) (*session, error) {
	s := &session{done: make(chan struct{})}
	agents := map[string]*agentConn{}
	defer func() {
		for _, a := range agents {
			a.Close()
		}
	}()
	var via []string
	for _, hop := range d.route {
		ag := agents[hop.IdentityAgent]
		if ag == nil {
			ag = dialAgent(ctx, hop.IdentityAgent)
			if ag.err != nil {
				d.opts.logf("sshdial: ssh-agent at %s: %v", ag.path, ag.err)
			}
			agents[hop.IdentityAgent] = ag
		}
		var prev *ssh.Client
		if len(s.clients) > 0 {
			prev = s.clients[len(s.clients)-1]
		}
		c, err := d.connectHop(ctx, prev, hop, strings.Join(via, ","), ag)
		if err != nil {
			s.end(err)
			return nil, err
		}
		s.clients = append(s.clients, c)
		go func() {
			c.Wait()
			s.end(&Error{Kind: KindUnreachable, Host: hop.String(), Msg: "SSH connection closed"})
		}()
		go keepalive(c, hop.KeepaliveInterval, hop.KeepaliveCountMax, func(err error) {
			d.opts.logf("sshdial: %s stopped answering: %v", hop, err)
			s.end(&Error{Kind: KindUnreachable, Host: hop.String(), Msg: "the node stopped answering", Err: err})
		})
		via = append(via, Target{User: hop.User, Host: hop.Alias, Port: portIfNot22(hop.Port)}.String())
	}
	return s, nil
}

func portIfNot22(p int) int {
	if p == 22 {
		return 0
	}
	return p
}

// hopTimer bounds a hop's login by ConnectTimeout, but can be paused
// while a person answers the unknown-host question. It closes the
// connection when it fires (tunnelled hops have no deadlines) and records
// that it did, so the resulting error can say why.
type hopTimer struct {
	mu    sync.Mutex
	d     time.Duration
	t     *time.Timer
	fired bool
}

func startHopTimer(abort func(), d time.Duration) *hopTimer {
	h := &hopTimer{d: d}
	h.t = time.AfterFunc(d, func() {
		h.mu.Lock()
		h.fired = true
		h.mu.Unlock()
		abort()
	})
	return h
}

func (h *hopTimer) pause() { h.t.Stop() }

func (h *hopTimer) resume() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.fired {
		h.t.Reset(h.d)
	}
}

// stop reports whether the timer had not fired.
func (h *hopTimer) stop() bool {
	h.t.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.fired
}

func (d *Dialer) connectHop(ctx context.Context, prev *ssh.Client, hop Hop, via string, ag *agentConn) (*ssh.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, hop.ConnectTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if prev == nil {
		var nd net.Dialer
		nc, err = nd.DialContext(dctx, "tcp", hop.Addr())
		if err != nil {
			e := &Error{Kind: KindUnreachable, Host: hop.String(), Msg: "could not connect", Err: err,
				Hint: "check the host name and port, that the node is up and that its sshd listens there"}
			if dctx.Err() != nil && ctx.Err() == nil {
				e.Msg = fmt.Sprintf("no answer within %v (ConnectTimeout)", hop.ConnectTimeout)
			}
			return nil, e
		}
	} else {
		nc, err = prev.DialContext(dctx, "tcp", hop.Addr())
		if err != nil {
			return nil, &Error{Kind: KindUnreachable, Host: hop.String(),
				Msg: "the jump host could not connect to it", Err: err,
				Hint: "check that the jump host can reach this address and that its sshd allows TCP forwarding (AllowTcpForwarding)"}
		}
	}

	hk, err := newHostKeyCheck(hop, via, nil, d.accepted, d.opts.logf)
	if err != nil {
		nc.Close()
		return nil, err
	}
	ka := &keyAuth{hop: hop, agent: ag, passphrase: d.opts.Passphrase, logf: d.opts.logf}
	// Giving up closes the connection and the ssh-agent's: a hung agent
	// (a confirmation nobody answers) must not hold the login forever.
	abort := func() {
		nc.Close()
		ag.Close()
	}
	timer := startHopTimer(abort, hop.ConnectTimeout)
	if d.opts.AskUnknown != nil {
		hk.ask = func(host string, key ssh.PublicKey) (bool, error) {
			// A person is reading a fingerprint: that is not the network
			// being slow.
			timer.pause()
			defer timer.resume()
			return d.opts.AskUnknown(host, key)
		}
	}
	if pp := d.opts.Passphrase; pp != nil {
		ka.passphrase = func(path string) ([]byte, error) {
			timer.pause()
			defer timer.resume()
			return pp(path)
		}
	}
	stopCtx := context.AfterFunc(ctx, abort)
	cfg := &ssh.ClientConfig{
		User:              hop.User,
		Auth:              []ssh.AuthMethod{ka.method()},
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms(),
		ClientVersion:     "SSH-2.0-hatui",
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, hop.Addr(), cfg)
	inTime := timer.stop()
	ctxOK := stopCtx()
	if err == nil && inTime && ctxOK {
		return ssh.NewClient(conn, chans, reqs), nil
	}
	if err == nil {
		conn.Close()
	}
	nc.Close()
	switch {
	case hk.refusal != nil:
		return nil, hk.refusal
	case !ctxOK:
		return nil, &Error{Kind: KindUnreachable, Host: hop.String(), Msg: "gave up logging in", Err: ctx.Err(),
			Hint: "the time allowed for connecting ran out; the node or the network may be slow or down"}
	case !inTime:
		return nil, &Error{Kind: KindUnreachable, Host: hop.String(),
			Msg:  fmt.Sprintf("login did not finish within %v (ConnectTimeout)", hop.ConnectTimeout),
			Hint: "the node or the network may be overloaded; is it an SSH server on that port?"}
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Host == "" {
			e.Host = hop.String()
		}
		return nil, e
	}
	var ane *ssh.AlgorithmNegotiationError
	if errors.As(err, &ane) && ane.What == "host key" && len(hk.known) > 0 {
		return nil, &Error{Kind: KindHostKeyChanged, Host: hop.String(), Known: hk.known, Err: err,
			Msg:  "REFUSED: the node no longer offers any host key of the types known_hosts has for it",
			Hint: "this may be a man-in-the-middle attack or a reinstalled node: check with the node's administrator, then remove the old entry (ssh-keygen -R) and connect again"}
	}
	if hk.verified {
		msg := err.Error()
		if strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "authentication fail") {
			return nil, ka.authError(err)
		}
		return nil, &Error{Kind: KindUnreachable, Host: hop.String(), Msg: "connection lost during login", Err: err}
	}
	return nil, &Error{Kind: KindUnreachable, Host: hop.String(), Msg: "SSH handshake failed", Err: err,
		Hint: "is an SSH server listening at " + hop.Addr() + "?"}
}
