// Package peer is the agent-to-agent channel that carries forwarded
// protocol sessions across the cluster network.
//
// The channel is the SSH transport (golang.org/x/crypto/ssh): encrypted,
// with both ends authenticated by an Ed25519 key that every agent derives
// from the deployment's gossip key with HKDF. Possession of the gossip key
// is what makes a node a member, so it is also what lets a node speak for
// the deployment; no second secret has to be distributed or rotated. Each
// key in the keyring derives one accepted identity, so key rotation works
// the same way as Serf's: install new, use new, remove old.
//
// Over an authenticated connection a peer opens one channel of type
// [ChannelType] per forwarded session and speaks the ordinary protocol in it.
// Other parts of the agent register channel types of their own with
// [Server.Handle] (the failover and geo raft logs travel as [Stream]s), so
// the agent has one listener and one secret for everything between nodes.
// The listener refuses every unregistered channel type and every global
// request.
package peer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/hkdf"
	"golang.org/x/crypto/ssh"
)

// ChannelType names the SSH channel that carries one protocol session.
const ChannelType = "hatui-protocol@hatui"

// hkdfInfo binds derived keys to this use, so the same gossip key used
// elsewhere can never yield the same key pair.
const hkdfInfo = "hatui peer channel v1"

// ErrNoKey is returned when there is no key to derive an identity from.
var ErrNoKey = errors.New("peer channel needs a gossip key: without one it would be unauthenticated, so forwarding is off")

// DeriveSigner derives the Ed25519 identity for one gossip key.
func DeriveSigner(key []byte) (ssh.Signer, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, key, nil, []byte(hkdfInfo)), seed); err != nil {
		return nil, fmt.Errorf("deriving peer key: %w", err)
	}
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("building peer signer: %w", err)
	}
	return s, nil
}

// identity holds the signer for the primary key and every accepted public
// key.
type identity struct {
	signer   ssh.Signer
	accepted [][]byte
}

func newIdentity(keys [][]byte) (*identity, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	id := &identity{}
	for i, k := range keys {
		s, err := DeriveSigner(k)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			id.signer = s
		}
		id.accepted = append(id.accepted, s.PublicKey().Marshal())
	}
	return id, nil
}

func (id *identity) accepts(k ssh.PublicKey) bool {
	b := k.Marshal()
	for _, a := range id.accepted {
		if bytes.Equal(a, b) {
			return true
		}
	}
	return false
}

// Server accepts peer connections and hands each protocol channel to a
// handler.
type Server struct {
	ln   net.Listener
	cfg  *ssh.ServerConfig
	opts options
	wg   sync.WaitGroup

	mu       sync.Mutex
	handlers map[string]func(net.Conn)
	conns    map[net.Conn]struct{}
	done     bool
	// closing is closed when Close begins, for handlers that wait.
	closing chan struct{}
}

// Option changes how a Server or Dialer handles its connections.
type Option func(*options)

type options struct {
	wrap   func(net.Conn) net.Conn
	source net.IP
}

// WithSourceIP makes a Dialer dial from ip (the node's peer address), so
// that peers and firewalls see the address the node is known by rather
// than whatever the kernel picks on a multi-homed host.
func WithSourceIP(ip net.IP) Option {
	return func(o *options) {
		if ip != nil && !ip.IsUnspecified() {
			o.source = ip
		}
	}
}

// WithConnWrapper passes every TCP connection, accepted or dialed, through
// wrap before the SSH handshake (the demo cuts sites off with it).
func WithConnWrapper(wrap func(net.Conn) net.Conn) Option {
	return func(o *options) { o.wrap = wrap }
}

func buildOptions(opts []Option) options {
	o := options{wrap: func(c net.Conn) net.Conn { return c }}
	for _, f := range opts {
		f(&o)
	}
	if o.wrap == nil {
		o.wrap = func(c net.Conn) net.Conn { return c }
	}
	return o
}

// Listen starts a peer listener on addr. handle is called in its own
// goroutine for every accepted protocol channel and must close the conn.
func Listen(addr string, keys [][]byte, handle func(net.Conn), opts ...Option) (*Server, error) {
	id, err := newIdentity(keys)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if id.accepts(k) {
				return &ssh.Permissions{}, nil
			}
			return nil, fmt.Errorf("peer %s offered a key not derived from this deployment's gossip keyring", meta.RemoteAddr())
		},
		MaxAuthTries:  2,
		ServerVersion: "SSH-2.0-hatui-peer",
	}
	cfg.AddHostKey(id.signer)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for peers on %s: %w", addr, err)
	}
	s := &Server{ln: ln, cfg: cfg, opts: buildOptions(opts), conns: map[net.Conn]struct{}{}, closing: make(chan struct{}), handlers: map[string]func(net.Conn){ChannelType: handle}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handle serves channels of chanType with h, called in its own goroutine
// for each channel; h must close the conn. A later call for the same type
// replaces the handler; a nil h stops serving the type.
func (s *Server) Handle(chanType string, h func(net.Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.handlers, chanType)
		return
	}
	s.handlers[chanType] = h
}

func (s *Server) handler(chanType string) func(net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlers[chanType]
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			return
		}
		c = s.opts.wrap(c)
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	// An unauthenticated peer gets a few seconds to finish the handshake.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	c.SetDeadline(time.Time{})
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		h := s.handler(nc.ChannelType())
		if h == nil {
			nc.Reject(ssh.UnknownChannelType, "channel type "+nc.ChannelType()+" is not served here")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go ssh.DiscardRequests(creqs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h(newChanConn(ch, c.LocalAddr(), c.RemoteAddr()))
		}()
	}
	wg.Wait()
}

// Close stops the listener and every open connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.done {
		close(s.closing)
	}
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// Dialer opens protocol channels to other agents. It keeps one SSH
// connection per peer and opens a channel per session on it, so a
// forwarded request costs no handshake; a connection that fails is
// dropped and the next dial makes a new one.
type Dialer struct {
	id   *identity
	opts options

	mu    sync.Mutex
	conns map[string]*ssh.Client
}

// NewDialer returns a Dialer that authenticates with keys[0] and accepts a
// server whose key derives from any of keys.
func NewDialer(keys [][]byte, opts ...Option) (*Dialer, error) {
	id, err := newIdentity(keys)
	if err != nil {
		return nil, err
	}
	return &Dialer{id: id, opts: buildOptions(opts), conns: map[string]*ssh.Client{}}, nil
}

// Dial opens one protocol channel to the peer at addr, bounded by ctx.
func (d *Dialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return d.DialChannel(ctx, addr, ChannelType)
}

// DialChannel opens one channel of chanType to the peer at addr, bounded
// by ctx, on the pooled connection to that peer.
func (d *Dialer) DialChannel(ctx context.Context, addr, chanType string) (net.Conn, error) {
	for try := 0; ; try++ {
		c, fresh, err := d.client(ctx, addr)
		if err != nil {
			return nil, err
		}
		conn, err := openChannel(ctx, c, chanType)
		if err == nil {
			return conn, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			// The peer answered and refused: the connection is fine.
			return nil, fmt.Errorf("opening %s channel to peer %s: %w", chanType, addr, err)
		}
		d.drop(addr, c)
		if fresh || try > 0 || ctx.Err() != nil {
			return nil, fmt.Errorf("opening %s channel to peer %s: %w", chanType, addr, err)
		}
		// A pooled connection went stale: try once with a new one.
	}
}

// Close closes every pooled connection.
func (d *Dialer) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for addr, c := range d.conns {
		c.Close()
		delete(d.conns, addr)
	}
	return nil
}

func (d *Dialer) drop(addr string, c *ssh.Client) {
	d.mu.Lock()
	if d.conns[addr] == c {
		delete(d.conns, addr)
	}
	d.mu.Unlock()
	c.Close()
}

// client returns the pooled connection to addr, making one if needed.
func (d *Dialer) client(ctx context.Context, addr string) (*ssh.Client, bool, error) {
	d.mu.Lock()
	c := d.conns[addr]
	d.mu.Unlock()
	if c != nil {
		return c, false, nil
	}
	c, err := d.handshake(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	d.mu.Lock()
	if old := d.conns[addr]; old != nil {
		// Another dial won the race; use its connection.
		d.mu.Unlock()
		c.Close()
		return old, false, nil
	}
	d.conns[addr] = c
	d.mu.Unlock()
	go func() {
		c.Wait()
		d.mu.Lock()
		if d.conns[addr] == c {
			delete(d.conns, addr)
		}
		d.mu.Unlock()
	}()
	return c, true, nil
}

func (d *Dialer) handshake(ctx context.Context, addr string) (*ssh.Client, error) {
	var nd net.Dialer
	if d.opts.source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: d.opts.source}
	}
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to peer %s: %w", addr, err)
	}
	c = d.opts.wrap(c)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	cfg := &ssh.ClientConfig{
		User: "hatui-peer",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(d.id.signer)},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			if d.id.accepts(k) {
				return nil
			}
			return fmt.Errorf("peer %s is not part of this deployment: its key does not derive from our gossip keyring", addr)
		},
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
	}
	sc, chans, reqs, err := ssh.NewClientConn(c, addr, cfg)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("authenticating peer %s: %w", addr, err)
	}
	c.SetDeadline(time.Time{})
	go func() {
		for nc := range chans {
			nc.Reject(ssh.Prohibited, "peers do not open channels back")
		}
	}()
	return ssh.NewClient(sc, nil, reqs), nil
}

// openChannel opens a channel, giving up when ctx ends.
func openChannel(ctx context.Context, c *ssh.Client, chanType string) (net.Conn, error) {
	type result struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ch, reqs, err := c.OpenChannel(chanType, nil)
		done <- result{ch, reqs, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		go ssh.DiscardRequests(r.reqs)
		return newChanConn(r.ch, c.LocalAddr(), c.RemoteAddr()), nil
	case <-ctx.Done():
		// The connection is stuck; closing it unblocks OpenChannel.
		c.Close()
		if r := <-done; r.err == nil {
			r.ch.Close()
		}
		return nil, ctx.Err()
	}
}
