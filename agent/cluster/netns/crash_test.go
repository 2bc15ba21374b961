//go:build linux

package netns_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// crashOpts are benchTiming with short stop timeouts: a
// takeover delay of 1 s + 1 s − 0.1 s + 0.2 s = 2.1 s, so that twenty
// crashes take seconds each.
var crashOpts = opts{witness: true, timing: benchTiming, vipStop: "200ms", sipStop: "800ms", sample: 20 * time.Millisecond}

// TestAgentCrashWatchdog: the agent of the node that holds the group is
// killed (kill -9; the node, its link, its VIP and its sipp stay up), 20
// times, alternating the nodes, with the VIP sampled on both nodes every
// 20 ms. Each time the watchdog (a file standing for /dev/watchdog: the
// kernel here has no softdog) stops being fed and resets the node (its
// link down) before the standby starts the group, the client's SIP
// OPTIONS are answered by the other node, and the reset node boots again
// as the standby. The sampler fails the test if the VIP is ever on an up
// interface of both nodes.
func TestAgentCrashWatchdog(t *testing.T) {
	const kills = 20
	c := newCluster(t, crashOpts)
	p := c.startProber(20 * time.Millisecond)
	h := c.waitStarted(60*time.Second, "")
	c.waitAnswered(p, 20*time.Second, time.Now())
	begin := time.Now()
	for i := range kills {
		sb := c.other(h)
		kill := time.Now()
		h.killAgent()
		// The watchdog resets the node; the standby takes the group over
		// (committed in the log) and waits out the takeover delay.
		waitFor(t, 10*time.Second, "the watchdog to reset "+h.name, func() (bool, string) { return h.lastReset().After(kill), "not yet" })
		waitFor(t, 10*time.Second, sb.name+" to take the group over", func() (bool, string) {
			g, _, err := sb.group()
			return err == nil && g.Active == sb.name, fmt.Sprintf("%+v %v", g, err)
		})
		// The reset node boots again meanwhile (its VIP gone with the
		// reboot): it must find the group taken and stay standby.
		h.revive()
		if got := c.waitStarted(30*time.Second, h.name); got != sb {
			t.Fatalf("kill %d: after %s's agent died the group is on %s", i+1, h.name, got.name)
		}
		// Until the reset the old holder's sipp still answered: the
		// service is back with the first answer to a request sent after.
		reset := h.lastReset()
		at := c.waitAnswered(p, 30*time.Second, reset)
		started := firstEvent(t, sb, kill, group+" started here")
		if !reset.Before(started.Time) {
			t.Errorf("kill %d: %s started the group at %s, before the watchdog reset %s at %s", i+1, sb.name, stamp(started.Time), h.name, stamp(reset))
		}
		t.Logf("kill %d of %s's agent at %s: reset after %v, SIP answered by %s %v after the kill",
			i+1, h.name, stamp(kill), reset.Sub(kill).Round(time.Millisecond), sb.name, at.Sub(kill).Round(time.Millisecond))
		waitStandby(t, h, sb)
		h = sb
	}
	t.Logf("%d kills in %v", kills, time.Since(begin).Round(time.Second))
}

// waitStandby waits until n reports itself online with the group started
// on holder: ready to take over at the next crash.
func waitStandby(t testing.TB, n, holder *node) {
	t.Helper()
	waitFor(t, 60*time.Second, n.name+" back as standby", func() (bool, string) {
		g, cl, err := n.group()
		if err != nil {
			return false, err.Error()
		}
		for _, m := range cl.Nodes {
			if m.Name == n.name {
				return m.State == "online" && g.Active == holder.name && g.State == "started", fmt.Sprintf("%s, group %+v", m.State, g)
			}
		}
		return false, "not listed"
	})
}

// TestAgentCrashWithoutWatchdog: a cluster with neither watchdog nor
// fencing refuses to start until allow_agent_crash_risk is set; then
// every status names both nodes in the cluster's risks. When the holder's
// agent dies alone, the standby takes the group over in the log but does
// not add the address while the old holder still answers ARP and SIP for
// it: it says why in its status and alerts. The old holder's agent,
// restarted while it is cut off from the other voters (so it cannot reach
// the decision log), removes the stale VIP and stops sipp at once; then
// nothing answers any more and the standby starts the group.
func TestAgentCrashWithoutWatchdog(t *testing.T) {
	c := newCluster(t, opts{witness: true, watchdog: "none", risk: true, sample: 20 * time.Millisecond, deferStart: true})
	n1, n2, wit := c.nodes[0], c.nodes[1], c.nodes[2]

	t.Run("refused without the risk key", func(t *testing.T) {
		b, err := os.ReadFile(n1.cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		bad := n1.cfgPath + ".norisk"
		if err := os.WriteFile(bad, []byte(strings.Replace(string(b), "allow_agent_crash_risk = true\n", "", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"check-config", bad}, {"--config", bad}} {
			out, err := runAgent(t, n1, args...)
			if err == nil {
				t.Fatalf("ha-agent %s exited 0:\n%s", args[0], out)
			}
			for _, w := range []string{"allow_agent_crash_risk", "neither a watchdog nor a fencing device", "if its agent dies alone"} {
				if !strings.Contains(out, w) {
					t.Errorf("ha-agent %s does not say %q:\n%s", args[0], w, out)
				}
			}
		}
		out, err := runAgent(t, n1, "check-config", n1.cfgPath)
		if err != nil || !strings.Contains(out, "RISK: no watchdog and no fencing") || !strings.Contains(out, "takeover delay 3.1s") {
			t.Errorf("check-config with the risk key: %v:\n%s", err, out)
		}
	})

	c.startAll()
	p := c.startProber(50 * time.Millisecond)
	h := c.waitStarted(60*time.Second, "")
	sb := c.other(h)
	c.waitAnswered(p, 20*time.Second, time.Now())

	t.Run("status shows the risk", func(t *testing.T) {
		for _, via := range []*node{sb, wit} {
			for _, n := range []*node{n1, n2} {
				waitFor(t, 10*time.Second, via.name+"'s status naming "+n.name+"'s risk", func() (bool, string) {
					_, cl, err := via.group()
					if err != nil {
						return false, err.Error()
					}
					for _, r := range cl.Quorum.Risks {
						if strings.HasPrefix(r, n.name+" has no watchdog and no node can fence it: if its agent dies alone") {
							return true, ""
						}
					}
					return false, strings.Join(cl.Quorum.Risks, " | ")
				})
			}
		}
	})

	kill := time.Now()
	h.killAgent()
	t.Run("the address still answers: not added", func(t *testing.T) {
		firstEvent(t, sb, kill, "took "+group+" over from "+h.name)
		waitFor(t, 30*time.Second, sb.name+"'s status saying why the group waits", func() (bool, string) {
			g, _, err := sb.group()
			return err == nil && g.Active == sb.name &&
				strings.Contains(g.Reason, vipAddr+" still answers ARP on eth0") &&
				strings.Contains(g.Reason, vipAddr+":"+sipPort+" answers SIP OPTIONS"), fmt.Sprintf("%+v %v", g, err)
		})
		alert := firstEvent(t, sb, kill, "another node may still hold "+group)
		// Negative: it keeps waiting while the old holder answers; look
		// again after twice the takeover delay.
		time.Sleep(2 * takeoverDelay)
		if on, err := vipOnUpInterface(sb.host); err != nil || on {
			t.Errorf("%s added the VIP while %s still answers for it (err %v)", sb.name, h.name, err)
		}
		if e := eventsSince(sb, kill, "started here"); len(e) > 0 {
			t.Errorf("%s started the group while %s still answers for it: %s", sb.name, h.name, e[0].Message)
		}
		t.Logf("%s: %s", sb.name, alert.Message)
	})

	t.Run("the old holder's restarted agent removes the stale address before it rejoins", func(t *testing.T) {
		c.lab.Cut(h.host, sb.host)
		c.lab.Cut(h.host, wit.host)
		restart := time.Now()
		h.start()
		waitFor(t, 20*time.Second, "the VIP gone from "+h.name, func() (bool, string) {
			on, err := vipOnUpInterface(h.host)
			return err == nil && !on && h.sippPid() == 0, fmt.Sprintf("vip %v (%v), sipp %d", on, err, h.sippPid())
		})
		gone := time.Now()
		stale := firstEvent(t, h, restart, "stopping it at once")
		// Nothing answers now: the standby starts the group, with the
		// old holder still cut off from the log.
		if got := c.waitStarted(30*time.Second, h.name); got != sb {
			t.Fatalf("the group is on %s", got.name)
		}
		c.waitAnswered(p, 30*time.Second, gone)
		t.Logf("%s restarted %s: %s; VIP gone by %s; %s serves", h.name, stamp(restart), stale.Message, stamp(gone), sb.name)
		c.lab.Heal(h.host, sb.host)
		c.lab.Heal(h.host, wit.host)
		waitStandby(t, h, sb)
		if e := eventsSince(h, restart, "started here"); len(e) > 0 {
			t.Errorf("%s started the group again after its restart: %s", h.name, e[0].Message)
		}
	})
}

// runAgent runs ha-agent with args in n's namespace and returns its
// output; an agent still running after 30 s is killed and fails t.
func runAgent(t *testing.T, n *node, args ...string) (string, error) {
	t.Helper()
	cmd := n.host.Command(agentBin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("ha-agent %s still runs after 30 s:\n%s", strings.Join(args, " "), out.String())
		return "", exec.ErrWaitDelay
	}
}

// TestAddressAnsweredElsewhereIsNotAdded: the VIP goes from the holder's
// interface and another host (the client, standing for a misconfigured
// machine or a holder the cluster no longer knows) answers for it. The
// holder does not add it back: it leaves the group, and the node that
// takes the group waits, saying why, until the other host lets the
// address go; then it starts.
func TestAddressAnsweredElsewhereIsNotAdded(t *testing.T) {
	c := newCluster(t, opts{witness: true, sample: 20 * time.Millisecond})
	h := c.waitStarted(60*time.Second, "")
	sb := c.other(h)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	since := time.Now()
	ip("-n", h.host.NS(), "addr", "del", vipCIDR, "dev", "eth0")
	ip("-n", c.client.NS(), "addr", "add", vipCIDR, "dev", "eth0")
	refused := firstEvent(t, h, since, "not restarting vip: "+vipAddr+" still answers ARP on eth0")
	waitFor(t, 30*time.Second, sb.name+" holding the group and waiting", func() (bool, string) {
		g, _, err := sb.group()
		return err == nil && g.Active == sb.name && strings.Contains(g.Reason, vipAddr+" still answers ARP on eth0"), fmt.Sprintf("%+v %v", g, err)
	})
	for _, n := range []*node{h, sb} {
		if on, err := vipOnUpInterface(n.host); err != nil || on {
			t.Errorf("%s has the VIP while the client answers for it (err %v)", n.name, err)
		}
	}
	t.Logf("%s: %s", h.name, refused.Message)
	ip("-n", c.client.NS(), "addr", "del", vipCIDR, "dev", "eth0")
	if got := c.waitStarted(30*time.Second, h.name); got != sb {
		t.Fatalf("the group is on %s", got.name)
	}
}
