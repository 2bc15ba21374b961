package failover

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/protocol"
)

// Members lists a Serf pool's members; *membership.Pool is one.
type Members interface {
	Members() []membership.Member
}

// SerfPath is the Serf pool as a heartbeat path. Serf's failure detector
// probes with acknowledgements (directly and through other members), so a
// member it reports alive is in two-way contact; SerfPath polls the pool
// and counts a member as in contact at each poll that finds it alive.
// Serf declares failure after its own suspicion time, which comes on top
// of the dead time: tune the pool (membership.LAN) rather than the dead
// time when Serf is the only path.
type SerfPath struct {
	pool  Members
	peers []string
	every time.Duration
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu    sync.Mutex
	links map[string]PathLink
}

// NewSerfPath watches peers in pool, polling every interval (half the
// keepalive is a good choice).
func NewSerfPath(pool Members, peers []string, interval time.Duration) (*SerfPath, error) {
	if pool == nil {
		return nil, fmt.Errorf("serf heartbeat path: no pool")
	}
	if interval <= 0 {
		return nil, fmt.Errorf("serf heartbeat path: interval %s is not a positive duration", interval)
	}
	p := &SerfPath{pool: pool, peers: slices.Clone(peers), every: interval, done: make(chan struct{}), links: map[string]PathLink{}}
	for _, n := range peers {
		p.links[n] = PathLink{Peer: n, Detail: "not yet a member of the Serf pool"}
	}
	p.poll()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.poll()
			}
		}
	}()
	return p, nil
}

func (p *SerfPath) poll() {
	now := time.Now()
	members := p.pool.Members()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range p.peers {
		l := p.links[name]
		i := slices.IndexFunc(members, func(m membership.Member) bool { return m.Name == name })
		switch {
		case i < 0:
			l.Detail = "not a member of the Serf pool"
		case members[i].Status == protocol.MemberAlive:
			l.Contact, l.Heard, l.Detail = now, now, ""
		default:
			l.Detail = "serf says " + string(members[i].Status)
		}
		p.links[name] = l
	}
}

// Kind implements Path.
func (p *SerfPath) Kind() string { return PathSerf }

// Links implements Path.
func (p *SerfPath) Links() []PathLink {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PathLink, 0, len(p.peers))
	for _, n := range p.peers {
		out = append(out, p.links[n])
	}
	return out
}

// Close implements Path. It does not close the pool.
func (p *SerfPath) Close() error {
	p.once.Do(func() {
		close(p.done)
		p.wg.Wait()
	})
	return nil
}
