package agent

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Join retry bounds. A whole site cold-starts after a power cut in a random
// order, so the first node up finds nobody; it keeps asking, quickly at
// first, then every maxJoinRetry for as long as it is alone (Consul's
// retry_join is the model).
const (
	minJoinRetry = time.Second
	maxJoinRetry = 10 * time.Second
)

// joiner keeps the node in its deployment's pool: it joins the configured
// peers until one answers, and again whenever the node finds itself alone.
type joiner struct {
	a     *Agent
	addrs []string // configured join addresses, this node's own left out
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	reached bool          // some configured peer has answered since start
	lastErr string        // why the last attempt failed
	every   time.Duration // the current retry interval, while alone
	tries   int
	started bool
}

func newJoiner(a *Agent) *joiner {
	j := &joiner{a: a, stop: make(chan struct{}), done: make(chan struct{})}
	own := []string{a.cfg.Gossip.Bind, a.cfg.Gossip.Advertise, a.pool.Addr()}
	for _, addr := range a.cfg.Gossip.Join {
		if !slices.ContainsFunc(own, func(o string) bool { return sameAddr(o, addr) }) {
			j.addrs = append(j.addrs, addr)
		}
	}
	return j
}

func sameAddr(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	aip, bip := net.ParseIP(ah), net.ParseIP(bh)
	return ap == bp && (ah == bh || (aip != nil && aip.Equal(bip)))
}

// run joins at once and then whenever the node is alone, with a backoff
// that a success resets.
func (j *joiner) run() {
	defer close(j.done)
	if len(j.addrs) == 0 {
		return // the seed node: the others join it
	}
	wait := minJoinRetry
	for {
		if j.alone() {
			n, err := j.a.pool.Join(j.addrs)
			j.mu.Lock()
			j.tries++
			if err == nil && n > 0 && !j.alone() {
				if !j.reached || j.lastErr != "" {
					j.a.logger.Printf("joined the deployment through %s", strings.Join(j.addrs, ", "))
				}
				j.reached, j.lastErr, j.every = true, "", 0
				wait = minJoinRetry
			} else {
				msg := "no configured peer is a member of this deployment"
				if err != nil {
					msg = err.Error()
				}
				if j.lastErr != msg {
					j.a.logger.Printf("joining %s: %s (retrying until one answers)", strings.Join(j.addrs, ", "), msg)
				}
				j.lastErr = msg
				j.every = min(2*wait, maxJoinRetry)
			}
			j.mu.Unlock()
			j.a.Changed()
		} else {
			j.mu.Lock()
			j.reached, j.lastErr, j.every = true, "", 0
			j.mu.Unlock()
			wait = minJoinRetry
		}
		select {
		case <-j.stop:
			return
		case <-time.After(wait):
		}
		if j.alone() {
			wait = min(2*wait, maxJoinRetry)
		}
	}
}

// alone says whether no other member of the deployment is alive.
func (j *joiner) alone() bool {
	for _, m := range j.a.members() {
		if m.Name != j.a.cfg.Node && m.Status == protocol.MemberAlive {
			return false
		}
	}
	return true
}

// risk is the sentence status shows while the node is alone and trying.
func (j *joiner) risk() string {
	if j == nil || len(j.addrs) == 0 || !j.alone() {
		return ""
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.tries == 0 {
		return ""
	}
	when := ""
	if j.every > 0 {
		when = fmt.Sprintf(", every %s", j.every)
	}
	if !j.reached {
		return fmt.Sprintf("%s has not reached any configured peer yet (%s: %s); this view is one node, not the cluster: still trying%s",
			j.a.cfg.Node, strings.Join(j.addrs, ", "), j.lastErr, when)
	}
	return fmt.Sprintf("%s is alone: no other member answers; rejoining through %s%s", j.a.cfg.Node, strings.Join(j.addrs, ", "), when)
}

// start begins joining in the background.
func (j *joiner) start() {
	j.mu.Lock()
	j.started = true
	j.mu.Unlock()
	go j.run()
}

func (j *joiner) close() {
	j.mu.Lock()
	started := j.started
	j.mu.Unlock()
	close(j.stop)
	if started {
		<-j.done
	}
}
