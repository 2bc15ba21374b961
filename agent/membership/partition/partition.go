// Package partition cuts gossip between chosen hosts inside one process:
// a memberlist transport that drops packets and black-holes stream dials
// between addresses a Network says are apart. The demo uses it to cut a
// site off while every agent runs real Serf on loopback; a dial into a cut
// waits out its timeout, as a dial into a dead link would.
package partition

import (
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Network says which hosts can reach each other. Hosts are IP strings;
// hosts in different non-zero groups are apart, everyone else connects.
type Network struct {
	mu    sync.RWMutex
	group map[string]int
}

// NewNetwork returns a network with no cuts.
func NewNetwork() *Network { return &Network{group: map[string]int{}} }

// Isolate puts hosts in a group of their own, apart from everyone else.
func (n *Network) Isolate(group int, hosts ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range hosts {
		n.group[h] = group
	}
}

// Heal removes hosts from their group.
func (n *Network) Heal(hosts ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range hosts {
		delete(n.group, h)
	}
}

// Apart reports whether traffic between the two hosts is cut.
func (n *Network) Apart(a, b string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.group[a] != n.group[b]
}

// Wrap returns a transport for the host self that obeys the network.
func (n *Network) Wrap(self string, inner memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	t := &transport{NodeAwareTransport: inner, net: n, self: self,
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn),
		stopping: make(chan struct{}), done: make(chan struct{})}
	go t.pump()
	return t
}

type transport struct {
	memberlist.NodeAwareTransport
	net     *Network
	self    string
	packets chan *memberlist.Packet
	streams chan net.Conn
	// stopping closes when Shutdown begins: from then on pump discards
	// what arrives. done closes when the inner transport has shut down,
	// and only then may pump stop draining, or the inner listeners block
	// forever on their channels.
	stopping chan struct{}
	done     chan struct{}
	once     sync.Once
}

func host(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// pump filters what arrives, and keeps draining the inner channels until
// the inner transport has shut down.
func (t *transport) pump() {
	in, sin := t.NodeAwareTransport.PacketCh(), t.NodeAwareTransport.StreamCh()
	for {
		select {
		case p := <-in:
			if p == nil || t.net.Apart(t.self, host(p.From.String())) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.stopping:
			}
		case c := <-sin:
			if c == nil {
				continue
			}
			if t.net.Apart(t.self, host(c.RemoteAddr().String())) {
				c.Close()
				continue
			}
			select {
			case t.streams <- c:
			case <-t.stopping:
				c.Close()
			}
		case <-t.done:
			return
		}
	}
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *transport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.net.Apart(t.self, host(addr)) {
		return time.Now(), nil // sent into the void
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.net.Apart(t.self, host(a.Addr)) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.net.Apart(t.self, host(a.Addr)) {
		select {
		case <-time.After(timeout):
		case <-t.stopping:
		}
		return nil, fmt.Errorf("dial %s: i/o timeout (partitioned)", a.Addr)
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}

func (t *transport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.stopping)
		err = t.NodeAwareTransport.Shutdown()
		close(t.done)
	})
	return err
}

// WrapConn returns c as the host self sees it through the network: while
// self and the far end are apart, writes wait (as on a dead link, until
// the cut heals, the deadline passes or the conn is closed), so nothing
// crosses a cut. The demo wraps its agents' peer channel with it.
func (n *Network) WrapConn(self string, c net.Conn) net.Conn {
	return &cutConn{Conn: c, net: n, self: self, far: host(c.RemoteAddr().String()), closed: make(chan struct{})}
}

type cutConn struct {
	net.Conn
	net       *Network
	self, far string
	mu        sync.Mutex
	deadline  time.Time
	closed    chan struct{}
	once      sync.Once
}

func (c *cutConn) Write(b []byte) (int, error) {
	for c.net.Apart(c.self, c.far) {
		c.mu.Lock()
		dl := c.deadline
		c.mu.Unlock()
		if !dl.IsZero() && time.Now().After(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
	return c.Conn.Write(b)
}

func (c *cutConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *cutConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *cutConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}
