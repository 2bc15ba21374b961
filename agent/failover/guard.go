package failover

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/resource"
)

// guard asks, before the group starts here, whether another host still
// answers for it: every resource that can tell (a virtual IP's ARP probe,
// resource.InUse) and, where the group has SIP checks of one of its
// virtual IPs, one SIP OPTIONS to that address. It is the last line of
// defence against two holders: the decision log and the takeover rules
// come first, but a holder whose agent died without a watchdog, or a
// fence that powered off the wrong machine, leaves an address that still
// answers, and adding it a second time would split the calls.
type guard struct {
	g   *resource.Group
	sip []*health.Check
}

// sipGuardTimeout bounds the SIP OPTIONS sent before a start: one
// datagram (RFC 3261's first retransmission would come at 500 ms). A PBX
// that has the address answers within milliseconds; a start that finds
// nobody pays this once, alongside the ARP probe.
const sipGuardTimeout = 250 * time.Millisecond

// newGuard builds g's guard: the SIP checks among m's that ask one of g's
// virtual IPs become one-shot probes accepting any answer.
func newGuard(g *resource.Group, m *health.Monitor) *guard {
	gd := &guard{g: g}
	if g == nil || m == nil {
		return gd
	}
	vips := map[netip.Addr]bool{}
	for _, r := range g.Resources() {
		if s, ok := resource.SpecOf(r); ok && s.Type == "vip" {
			if p, err := netip.ParsePrefix(strings.TrimSpace(s.Params["ip"])); err == nil {
				vips[p.Addr()] = true
			}
		}
	}
	for _, s := range m.Specs() {
		if s.Kind != "sip" {
			continue
		}
		host, _, err := net.SplitHostPort(s.Params["address"])
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(host); err != nil || !vips[a] {
			continue
		}
		params := maps.Clone(s.Params)
		params["accept"] = "any" // any answer: something serves the address
		c, err := health.New(health.Spec{Name: s.Name, Kind: "sip", Class: health.Minor, Interval: time.Second,
			Timeout: sipGuardTimeout, Rise: 1, Fall: 1, Params: params})
		if err == nil {
			gd.sip = append(gd.sip, c)
		}
	}
	return gd
}

// inUse runs every probe at once and returns one line for each that found
// another host answering; err holds the probes that could not run.
func (gd *guard) inUse(ctx context.Context) (busy []string, err error) {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	add := func(b []string, err error) {
		mu.Lock()
		busy = append(busy, b...)
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Go(func() { add(gd.g.InUse(ctx)) })
	for _, c := range gd.sip {
		wg.Go(func() {
			if out, err := c.Probe(ctx); err == nil {
				add([]string{fmt.Sprintf("%s answers SIP OPTIONS (%s)", c.Spec().Params["address"], out)}, nil)
			}
		})
	}
	wg.Wait()
	return busy, errors.Join(errs...)
}

// close releases the SIP probes.
func (gd *guard) close() {
	for _, c := range gd.sip {
		c.Close()
	}
}

// checkInUse runs the guard before a start. While another host answers
// for the group, it is not started here: the previous holder is fenced
// when a device can do it, else the node waits and looks again a little
// later. The group's reason says why (here at once, everywhere through
// the log's phase), and an event, which alerts, says it once per epoch.
// It reports whether the start must wait.
func (w *worker) checkInUse(ctx context.Context, wt want) bool {
	e := w.e
	busy, err := w.guard.inUse(ctx)
	if err != nil {
		e.log.Warn("a probe before the start could not run", "error", err)
	}
	w.mu.Lock()
	if len(busy) == 0 {
		w.inUse, w.retry = "", time.Time{}
		w.mu.Unlock()
		return false
	}
	first := w.inUseEpoch != wt.epoch
	w.inUseEpoch = wt.epoch
	w.mu.Unlock()

	st := e.fsm.state()
	prev := st.Group.Previous
	what := strings.Join(busy, "; ")
	reason := fmt.Sprintf("not started: %s, so another node may still hold %s", what, w.g.Name())
	if p := st.node(prev); p != nil && prev != e.cfg.Node && !p.Fenced && e.deps.Fencer != nil && e.deps.Fencer.CanFence(prev) {
		reason += "; fencing " + prev + ", which held it last"
		e.async("in-use-fence", func(ctx context.Context) {
			if e.fence(ctx, prev, fmt.Sprintf("%s still answers for %s", what, w.g.Name())) == nil {
				e.recordFenced(ctx, prev)
			}
		})
	} else {
		reason += "; waiting until it goes (stop it there, or power that node off)"
	}
	retry := min(max(e.cfg.Timing.Keepalive, 250*time.Millisecond), time.Second)
	w.mu.Lock()
	w.inUse, w.retry = reason, time.Now().Add(retry)
	w.mu.Unlock()
	if first {
		ev := e.event(EvInUse, "%s", reason)
		ev.Epoch = wt.epoch
		e.emit(ev)
	}
	w.reportPhase(wt.epoch, PhaseStarting, reason)
	return true
}

// inUseBeforeRecover probes, before resource name and those after it are
// restarted, each of them that is not running here now (an address that
// went from the interface): "" when nobody else answers for them.
func (w *worker) inUseBeforeRecover(ctx context.Context, name string) string {
	res := w.g.Resources()
	from := slices.IndexFunc(res, func(r resource.Resource) bool { return r.Name() == name })
	if from < 0 {
		return ""
	}
	var busy []string
	for _, r := range res[from:] {
		if r.Monitor(ctx).State == resource.StateRunning {
			continue
		}
		if who, err := resource.InUse(ctx, r); err == nil && who != "" {
			busy = append(busy, who)
		}
	}
	return strings.Join(busy, "; ")
}

// inUseReason is why the group waits to start here at epoch, "" when it
// does not.
func (w *worker) inUseReason(epoch uint64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inUseEpoch != epoch {
		return ""
	}
	return w.inUse
}
