package failover

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// NICConfig configures a dedicated-NIC heartbeat path: signed UDP
// heartbeats sent from, and received on, one local address (Heartbeat's
// ucast on the cluster interface).
type NICConfig struct {
	HeartbeatConfig
	// Local is host:port to bind, on the dedicated interface.
	Local string
	// Peers maps each peer's name to its host:port on that interface.
	Peers map[string]string
}

// NICPath is a running dedicated-NIC heartbeat path.
type NICPath struct {
	cfg      NICConfig
	conn     *net.UDPConn
	peers    map[string]*net.UDPAddr
	trackers map[string]*tracker
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

// NewNICPath binds cfg.Local and starts sending and receiving.
func NewNICPath(cfg NICConfig) (*NICPath, error) {
	if err := cfg.validate(PathNIC); err != nil {
		return nil, err
	}
	if len(cfg.Peers) == 0 {
		return nil, errors.New("nic heartbeat path: no peers: list each peer's address on the dedicated interface")
	}
	laddr, err := net.ResolveUDPAddr("udp", cfg.Local)
	if err != nil {
		return nil, fmt.Errorf("nic heartbeat path: local address %q: %w (want host:port on the dedicated interface)", cfg.Local, err)
	}
	p := &NICPath{cfg: cfg, peers: map[string]*net.UDPAddr{}, trackers: map[string]*tracker{}, done: make(chan struct{})}
	inc := incarnation()
	for name, addr := range cfg.Peers {
		if !nameRE.MatchString(name) || name == cfg.Node {
			return nil, fmt.Errorf("nic heartbeat path: peer %q is not a valid peer name", name)
		}
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("nic heartbeat path: address of %s %q: %w (want host:port)", name, addr, err)
		}
		p.peers[name] = a
		p.trackers[name] = newTracker(cfg.HeartbeatConfig, name, inc)
	}
	p.conn, err = listenRetry(func() (*net.UDPConn, error) { return net.ListenUDP("udp", laddr) })
	if err != nil {
		return nil, fmt.Errorf("nic heartbeat path: binding %s: %w (is the address configured on this node?)", cfg.Local, err)
	}
	p.wg.Add(2)
	go p.sendLoop()
	go p.recvLoop()
	return p, nil
}

// Kind implements Path.
func (p *NICPath) Kind() string { return PathNIC }

// Addr is the bound local address.
func (p *NICPath) Addr() net.Addr { return p.conn.LocalAddr() }

// Links implements Path.
func (p *NICPath) Links() []PathLink {
	out := make([]PathLink, 0, len(p.trackers))
	for _, name := range slices.Sorted(maps.Keys(p.trackers)) {
		out = append(out, p.trackers[name].link())
	}
	return out
}

func (p *NICPath) sendLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		now := time.Now()
		for name, tr := range p.trackers {
			if _, err := p.conn.WriteToUDP(tr.next(now), p.peers[name]); err != nil {
				tr.fail("sending: " + err.Error())
			}
		}
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
}

func (p *NICPath) recvLoop() {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		now := time.Now()
		h, err := decodeHeartbeat(buf[:n], p.cfg.Key)
		if err != nil {
			// Charge a bad line to the peer at that address, if any, so
			// that a key mismatch shows on the right link.
			for name, a := range p.peers {
				if a.IP.Equal(from.IP) {
					p.trackers[name].reject(err, from.String())
				}
			}
			continue
		}
		tr, err := route(p.cfg.HeartbeatConfig, p.trackers, h)
		if err != nil {
			continue
		}
		tr.receive(h, now)
	}
}

// Close implements Path.
func (p *NICPath) Close() error {
	var err error
	p.once.Do(func() {
		close(p.done)
		err = p.conn.Close()
		p.wg.Wait()
	})
	return err
}

// listenRetry retries a bind that fails with "address in use" for up to a
// second: a socket closed a moment ago can live on briefly in a child
// process forked just before (by a resource agent) until it execs.
func listenRetry[T any](listen func() (T, error)) (T, error) {
	deadline := time.Now().Add(time.Second)
	for {
		c, err := listen()
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
