// Package membership runs a Serf pool and reports who is alive.
//
// Serf's gossip detects failures; this package tunes it for failover (fast
// probes, no event coalescing), requires gossip encryption, carries each
// node's metadata as tags, and turns Serf's event stream into a member
// table that is never blocked by a slow reader: Serf stalls its own state
// updates when its EventCh is not drained (see shared/reference/serf.md).
package membership

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/hatui/hatui/protocol"
)

// Timings are the failure-detection knobs of a pool.
type Timings struct {
	ProbeInterval     time.Duration
	ProbeTimeout      time.Duration
	GossipInterval    time.Duration
	SuspicionMult     int
	ReconnectInterval time.Duration
	TCPTimeout        time.Duration
}

// LAN is the tuned local profile: failure detection in about a second,
// measured in docs/benchmarks.md. Probing is what detects a crash, so it
// is fast; gossip keeps memberlist's LAN interval, because a failure is
// also carried on every probe and each gossip tick is a wake-up of every
// idle agent (50 ms cost a third of an idle agent's CPU for 0.1 s of
// detection).
var LAN = Timings{
	ProbeInterval:     150 * time.Millisecond,
	ProbeTimeout:      75 * time.Millisecond,
	GossipInterval:    200 * time.Millisecond,
	SuspicionMult:     4,
	ReconnectInterval: time.Second,
	TCPTimeout:        time.Second,
}

// Options configure a pool.
type Options struct {
	Name string
	// BindAddr is host:port for both UDP and TCP.
	BindAddr string
	// AdvertiseAddr is what peers dial, when it differs from BindAddr.
	AdvertiseAddr string
	// Keys are the gossip keys, primary first. An empty list is refused
	// unless Insecure is set.
	Keys     [][]byte
	Insecure bool
	Tags     map[string]string
	Timings  Timings
	// Logger receives Serf's and memberlist's logs; nil discards them.
	Logger *log.Logger
	// WrapTransport, when set, wraps the UDP/TCP transport; the demo uses
	// it to cut sites apart (see package partition).
	WrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	// OnChange is called (from the pool's own goroutine, never under a
	// lock) after each membership or tag change, with what happened.
	OnChange func(Change)
}

// ErrNoKey is returned when a pool would run unencrypted without Insecure.
var ErrNoKey = errors.New("no gossip key: refusing to run membership unencrypted (set gossip.keys or gossip.key_file, or pass --insecure-dev for a throwaway test setup)")

// Member is one node as the pool sees it.
type Member struct {
	Name   string
	Addr   string // host:port of its gossip listener
	Status protocol.Membership
	Tags   map[string]string
	// Since is when this pool last saw the status change.
	Since time.Time
}

// Change is one membership event.
type Change struct {
	Member Member
	// Kind is "join", "failed", "leave", "update" or "reap".
	Kind string
}

// Pool is a running Serf pool.
type Pool struct {
	serf     *serf.Serf
	events   chan serf.Event
	onChange func(Change)
	done     chan struct{}

	mu    sync.Mutex
	since map[string]time.Time
	last  map[string]protocol.Membership
}

// Start creates the pool and starts gossiping. It does not join anyone.
func Start(o Options) (*Pool, error) {
	if len(o.Keys) == 0 && !o.Insecure {
		return nil, ErrNoKey
	}
	host, portStr, err := net.SplitHostPort(o.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("parsing gossip bind address %q: %w", o.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("parsing gossip bind port %q: %w", portStr, err)
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = o.Name
	mc.BindAddr = host
	mc.BindPort = port
	if o.AdvertiseAddr != "" {
		ah, ap, err := net.SplitHostPort(o.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("parsing gossip advertise address %q: %w", o.AdvertiseAddr, err)
		}
		mc.AdvertiseAddr = ah
		mc.AdvertisePort, _ = strconv.Atoi(ap)
	}
	t := o.Timings
	if t.ProbeInterval == 0 {
		t = LAN
	}
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.GossipInterval = t.GossipInterval
	mc.SuspicionMult = t.SuspicionMult
	mc.TCPTimeout = t.TCPTimeout
	// Gossip packets on a LAN are a few hundred bytes: compressing each
	// one costs a fresh LZW table (allocation, garbage collection) and
	// saves nothing worth having.
	mc.EnableCompression = false
	if len(o.Keys) > 0 {
		kr, err := memberlist.NewKeyring(o.Keys, o.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("loading gossip keys: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}

	if o.WrapTransport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host}, BindPort: port, Logger: logger(o.Logger),
		})
		if err != nil {
			return nil, fmt.Errorf("starting gossip on %s: %w", o.BindAddr, err)
		}
		mc.Transport = o.WrapTransport(nt)
	}

	sc := serf.DefaultConfig()
	sc.NodeName = o.Name
	sc.MemberlistConfig = mc
	sc.Tags = o.Tags
	sc.ReconnectInterval = t.ReconnectInterval
	// Coalescing delays member events; failover wants them at once.
	sc.CoalescePeriod = 0
	sc.QuiescentPeriod = 0
	sc.UserCoalescePeriod = 0
	sc.EnableNameConflictResolution = true
	sc.Logger = logger(o.Logger)
	mc.Logger = sc.Logger

	p := &Pool{
		events:   make(chan serf.Event, 1024),
		onChange: o.OnChange,
		done:     make(chan struct{}),
		since:    map[string]time.Time{},
		last:     map[string]protocol.Membership{},
	}
	sc.EventCh = p.events
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("starting gossip on %s: %w", o.BindAddr, err)
	}
	p.serf = s
	go p.loop()
	return p, nil
}

func logger(l *log.Logger) *log.Logger {
	if l == nil {
		return log.New(io.Discard, "", 0)
	}
	return l
}

// loop drains Serf's events at once so that Serf never blocks on us.
func (p *Pool) loop() {
	for {
		select {
		case e := <-p.events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			kind := map[serf.EventType]string{
				serf.EventMemberJoin: "join", serf.EventMemberFailed: "failed",
				serf.EventMemberLeave: "leave", serf.EventMemberUpdate: "update",
				serf.EventMemberReap: "reap",
			}[me.Type]
			for _, m := range me.Members {
				mm := p.convert(m)
				if p.onChange != nil {
					p.onChange(Change{Member: mm, Kind: kind})
				}
			}
		case <-p.serf.ShutdownCh():
			close(p.done)
			return
		}
	}
}

func status(s serf.MemberStatus) protocol.Membership {
	switch s {
	case serf.StatusAlive:
		return protocol.MemberAlive
	case serf.StatusFailed:
		return protocol.MemberFailed
	case serf.StatusLeft:
		return protocol.MemberLeft
	case serf.StatusLeaving:
		return protocol.MemberLeaving
	}
	return protocol.MemberUnknown
}

func (p *Pool) convert(m serf.Member) Member {
	st := status(m.Status)
	p.mu.Lock()
	if p.last[m.Name] != st {
		p.last[m.Name] = st
		p.since[m.Name] = time.Now()
	}
	since := p.since[m.Name]
	p.mu.Unlock()
	tags := make(map[string]string, len(m.Tags))
	for k, v := range m.Tags {
		tags[k] = v
	}
	return Member{
		Name:   m.Name,
		Addr:   net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
		Status: st,
		Tags:   tags,
		Since:  since,
	}
}

// Join contacts the given peers; it succeeds if at least one answers.
func (p *Pool) Join(addrs []string) (int, error) {
	n, err := p.serf.Join(addrs, true)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("joining %v: %w", addrs, err)
	}
	return n, nil
}

// Members returns every member known to the pool, sorted by name.
func (p *Pool) Members() []Member {
	ms := p.serf.Members()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, p.convert(m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Addr returns host:port of this node's gossip listener as peers see it.
func (p *Pool) Addr() string {
	m := p.serf.LocalMember()
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

// LocalTags returns this node's current tags.
func (p *Pool) LocalTags() map[string]string {
	t := p.serf.LocalMember().Tags
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}

// SetTags replaces this node's tags and gossips them.
func (p *Pool) SetTags(tags map[string]string) error {
	if err := p.serf.SetTags(tags); err != nil {
		return fmt.Errorf("publishing node tags: %w", err)
	}
	return nil
}

// Leave announces a graceful departure, then shuts down.
func (p *Pool) Leave() error {
	err := p.serf.Leave()
	p.serf.Shutdown()
	<-p.done
	return err
}

// Shutdown stops gossip without telling anyone, as a crash would.
func (p *Pool) Shutdown() error {
	err := p.serf.Shutdown()
	<-p.done
	return err
}
