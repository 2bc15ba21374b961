//go:build linux

package netns_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

// warmOpts: a witness, benchTiming, and a warm kamailio on both nodes.
// Only the VIP stops with the group, so the stop budget is the VIP's
// 200 ms and the takeover delay 0.2 s + 1 s − 0.1 s + 0.2 s = 1.3 s.
var warmOpts = opts{witness: true, warm: true, timing: benchTiming, vipStop: "200ms", sipStop: "2s"}

// warmResource returns the "sip" resource that n's own report lists for
// node on, if any.
func warmResource(g protocol.Group, on string) (protocol.Resource, bool) {
	i := slices.IndexFunc(g.Resources, func(r protocol.Resource) bool { return r.Name == "sip" && r.Node == on })
	if i < 0 {
		return protocol.Resource{}, false
	}
	return g.Resources[i], true
}

// waitWarm waits until sb reports its warm kamailio started while the
// group runs on holder, and returns kamailio's pid on sb.
func waitWarm(t *testing.T, sb, holder *node) int {
	t.Helper()
	waitFor(t, 30*time.Second, sb.name+"'s kamailio warm", func() (bool, string) {
		g, _, err := sb.group()
		if err != nil {
			return false, err.Error()
		}
		r, ok := warmResource(g, sb.name)
		return ok && r.Warm && r.State == "started" && g.Active == holder.name && sb.sippPid() > 0, fmt.Sprintf("%+v", g)
	})
	return sb.sippPid()
}

// TestWarmStandby: kamailio runs on both nodes (a warm resource; the
// agent sets ip_nonlocal_bind so the standby's listens on the VIP before
// it holds it), and only the VIP moves. Asserted, with the VIP sampled on
// both nodes every 50 ms for the whole test (never on both):
//   - both nodes' reports and the merged view show the standby's
//     kamailio as a warm standby (started, warm) beside the holder's;
//   - a switchover is served by the standby's already-running kamailio
//     (same pid), and the old holder's keeps running as the new warm
//     standby;
//   - the warm kamailio killed on the standby is restarted there, shown
//     with its fail count, and the group does not move;
//   - a crash of the holder is served by the other node's already-running
//     kamailio.
func TestWarmStandby(t *testing.T) {
	c := newCluster(t, warmOpts)
	p := c.startProber(20 * time.Millisecond)
	h := c.waitStarted(60*time.Second, "")
	sb := c.other(h)
	c.waitAnswered(p, 20*time.Second, time.Now())
	sbPid := waitWarm(t, sb, h)
	hPid := h.sippPid()

	// The merged view, asked of the holder, lists both kamailios.
	waitFor(t, 10*time.Second, "the merged view to show both kamailios", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		snap, err := h.client().StatusRequest(ctx, protocol.StatusRequest{})
		if err != nil {
			return false, err.Error()
		}
		for _, s := range snap.Sites {
			for _, cl := range s.Clusters {
				for _, g := range cl.Groups {
					if g.Name != group {
						continue
					}
					rh, okh := warmResource(g, h.name)
					rs, oks := warmResource(g, sb.name)
					if okh && oks && rh.State == "started" && rs.State == "started" && rs.Warm && g.Active == h.name {
						return true, ""
					}
					return false, fmt.Sprintf("%+v", g)
				}
			}
		}
		return false, "no group"
	})

	// A planned switchover moves the address only.
	begin := time.Now()
	if res, err := sb.do("switchover", group, sb.name); err != nil || !res.OK {
		t.Fatalf("switchover to %s: %+v %v", sb.name, res, err)
	}
	if got := c.waitStarted(30*time.Second, h.name); got != sb {
		t.Fatalf("after the switchover the group is on %s, want %s", got.name, sb.name)
	}
	back := c.waitAnswered(p, 10*time.Second, time.Now())
	if pid := sb.sippPid(); pid != sbPid {
		t.Errorf("the switchover restarted %s's kamailio (pid %d, was %d): the warm one should have served", sb.name, pid, sbPid)
	}
	if pid := h.sippPid(); pid != hPid {
		t.Errorf("the switchover stopped %s's kamailio (pid %d, was %d): it should stay as the warm standby", h.name, pid, hPid)
	}
	waitWarm(t, h, sb)
	t.Logf("switchover %s → %s: longest gap without SIP answers %v", h.name, sb.name, p.longestGap(begin, back).Round(time.Millisecond))

	// The warm kamailio dies on the standby: restarted there, the group
	// stays put.
	killed := time.Now()
	h.killSipp(syscall.SIGKILL)
	waitFor(t, 20*time.Second, "the warm kamailio restarted on "+h.name, func() (bool, string) {
		pid := h.sippPid()
		g, _, err := h.group()
		if err != nil {
			return false, err.Error()
		}
		r, _ := warmResource(g, h.name)
		return pid > 0 && pid != hPid && r.State == "started" && r.FailCount >= 1 && g.Active == sb.name,
			fmt.Sprintf("pid %d, %+v", pid, g)
	})
	firstEvent(t, h, killed, "restarted warm sip")
	if g, _, err := sb.group(); err != nil || g.Active != sb.name || g.State != "started" {
		t.Fatalf("after the warm restart on %s the group is %+v (%v), want started on %s", h.name, g, err, sb.name)
	}
	hPid = h.sippPid()

	// The holder crashes: the other node's running kamailio answers.
	sb.crash()
	crash := time.Now()
	if got := c.waitStarted(30*time.Second, sb.name); got != h {
		t.Fatalf("after the crash of %s the group is on %s", sb.name, got.name)
	}
	at := c.waitAnswered(p, 10*time.Second, crash)
	if pid := h.sippPid(); pid != hPid {
		t.Errorf("the takeover restarted %s's kamailio (pid %d, was %d): the warm one should have served", h.name, pid, hPid)
	}
	t.Logf("crash of %s: SIP answered by %s's warm kamailio after %v", sb.name, h.name, at.Sub(crash).Round(time.Millisecond))
}
