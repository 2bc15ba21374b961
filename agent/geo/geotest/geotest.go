// Package geotest helps run several geo voters in one process, for the geo
// manager's tests and for the demo: a [Network] of real stream layers that
// can be partitioned by node pair, and a [World] of fake site services that
// records every moment two sites serve at once.
//
// Partitions act on the dialling side: a dial between separated nodes
// fails at once, and separating two nodes closes the connections either
// one opened to the other, so the acceptor sees them end too.
package geotest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrPartitioned is what a dial across a partition returns.
var ErrPartitioned = errors.New("geotest: the two nodes are partitioned")

type pair struct{ a, b string }

func mkpair(a, b string) pair {
	if b < a {
		a, b = b, a
	}
	return pair{a, b}
}

// Network tracks which nodes can reach which.
type Network struct {
	mu      sync.Mutex
	nodeAt  map[string]string // address → node
	blocked map[pair]bool
	conns   map[*conn]struct{}
}

// NewNetwork returns a network where every node reaches every other.
func NewNetwork() *Network {
	return &Network{nodeAt: map[string]string{}, blocked: map[pair]bool{}, conns: map[*conn]struct{}{}}
}

// Layer wraps inner, the stream layer of node, so that its dials obey the
// partitions. It records inner's address as node's.
func (n *Network) Layer(node string, inner raft.StreamLayer) raft.StreamLayer {
	n.mu.Lock()
	n.nodeAt[inner.Addr().String()] = node
	n.mu.Unlock()
	return &layer{n: n, node: node, inner: inner}
}

// Cut separates a and b.
func (n *Network) Cut(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[mkpair(a, b)] = true
	n.closeLocked()
}

// Split separates every node of one group from every node of the others.
func (n *Network) Split(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					n.blocked[mkpair(a, b)] = true
				}
			}
		}
	}
	n.closeLocked()
}

// Heal removes every partition.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.blocked)
}

// Connected reports whether a and b can reach each other.
func (n *Network) Connected(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.blocked[mkpair(a, b)]
}

// closeLocked closes the connections that now cross a partition.
func (n *Network) closeLocked() {
	for c := range n.conns {
		if n.blocked[mkpair(c.from, c.to)] {
			delete(n.conns, c)
			c.Conn.Close()
		}
	}
}

type layer struct {
	n     *Network
	node  string
	inner raft.StreamLayer
}

// Accept implements net.Listener; partitions act on the dialling side.
func (l *layer) Accept() (net.Conn, error) { return l.inner.Accept() }

// Close implements net.Listener.
func (l *layer) Close() error { return l.inner.Close() }

// Addr implements net.Listener.
func (l *layer) Addr() net.Addr { return l.inner.Addr() }

// Dial implements raft.StreamLayer, refusing peers across a partition.
func (l *layer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	n := l.n
	n.mu.Lock()
	peer, known := n.nodeAt[string(addr)]
	blocked := known && n.blocked[mkpair(l.node, peer)]
	n.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("dialling %s (%s) from %s: %w", peer, addr, l.node, ErrPartitioned)
	}
	c, err := l.inner.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	w := &conn{Conn: c, n: n, from: l.node, to: peer}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blocked[mkpair(l.node, peer)] {
		c.Close()
		return nil, fmt.Errorf("dialling %s (%s) from %s: %w", peer, addr, l.node, ErrPartitioned)
	}
	n.conns[w] = struct{}{}
	return w, nil
}

type conn struct {
	net.Conn
	n        *Network
	from, to string
}

// Close implements net.Conn.
func (c *conn) Close() error {
	c.n.mu.Lock()
	delete(c.n.conns, c)
	c.n.mu.Unlock()
	return c.Conn.Close()
}

// World holds the fake services of every site of a deployment.
type World struct {
	mu         sync.Mutex
	sites      map[string]*Service
	violations []string
}

// NewWorld returns an empty world.
func NewWorld() *World { return &World{sites: map[string]*Service{}} }

// Site returns the service of the named site, creating it stopped.
func (w *World) Site(name string) *Service {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sites[name]
	if s == nil {
		s = &Service{w: w, site: name}
		w.sites[name] = s
	}
	return s
}

// Serving lists the sites serving now, sorted.
func (w *World) Serving() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.servingLocked()
}

func (w *World) servingLocked() []string {
	var out []string
	for name, s := range w.sites {
		if s.serving {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Violations lists every moment two sites served at once.
func (w *World) Violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.violations)
}

// Watch samples the world every interval until ctx ends, recording a
// violation whenever two sites serve; it backs up the exact check made
// at every start.
func (w *World) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.mu.Lock()
			if s := w.servingLocked(); len(s) > 1 {
				w.violations = append(w.violations, fmt.Sprintf("%s: sampled sites %v serving at once", time.Now().Format("15:04:05.000"), s))
			}
			w.mu.Unlock()
		}
	}
}

// Transition is one change of a site's service.
type Transition struct {
	Time    time.Time
	Serving bool
}

// Service is a fake site service: it serves or not, and can be powered off
// (a lost site: it stops at once and cannot start).
type Service struct {
	w        *World
	site     string
	serving  bool
	off      bool
	history  []Transition
	startErr error
	onStart  func()
}

// StartServing implements geo.Service.
func (s *Service) StartServing(context.Context) error {
	f, err := s.start()
	if f != nil {
		f() // outside the lock: f may act on the world
	}
	return err
}

func (s *Service) start() (func(), error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.off {
		return nil, fmt.Errorf("site %s is powered off", s.site)
	}
	if s.startErr != nil {
		return nil, s.startErr
	}
	if s.serving {
		return nil, nil
	}
	if others := s.w.servingLocked(); len(others) > 0 {
		s.w.violations = append(s.w.violations, fmt.Sprintf("%s: site %s started while %v served", time.Now().Format("15:04:05.000"), s.site, others))
	}
	s.serving = true
	s.history = append(s.history, Transition{Time: time.Now(), Serving: true})
	f := s.onStart
	s.onStart = nil
	return f, nil
}

// OnStart runs f once, the next time the service starts, just after it
// started: a fault injected at the worst moment.
func (s *Service) OnStart(f func()) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.onStart = f
}

// StopServing implements geo.Service.
func (s *Service) StopServing(context.Context) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.stopLocked()
	return nil
}

func (s *Service) stopLocked() {
	if s.serving {
		s.serving = false
		s.history = append(s.history, Transition{Time: time.Now(), Serving: false})
	}
}

// Serving reports whether the site serves now.
func (s *Service) Serving() bool {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.serving
}

// History returns the site's transitions, oldest first.
func (s *Service) History() []Transition {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return slices.Clone(s.history)
}

// PowerOff loses the site: its service stops and cannot start again until
// PowerOn.
func (s *Service) PowerOff() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.off = true
	s.stopLocked()
}

// PowerOn brings a lost site back (its service stays stopped).
func (s *Service) PowerOn() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.off = false
}

// FailStarts makes StartServing fail with err (nil: succeed again).
func (s *Service) FailStarts(err error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.startErr = err
}
