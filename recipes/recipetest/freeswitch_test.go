//go:build linux

package recipetest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

// watchdogFile stands a file where each node's /dev/watchdog would be.
func watchdogFile(t *testing.T) func(n *node) map[string]string {
	return func(n *node) map[string]string {
		f := filepath.Join(t.TempDir(), n.name+"-watchdog")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return map[string]string{"watchdog": f}
	}
}

// vipSampler checks every 50 ms, until the test ends, that the shared
// address is never on two nodes at once.
func (d *deployment) vipSampler(addr string) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var both []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if h := d.holders(addr); len(h) > 1 {
				mu.Lock()
				both = append(both, fmt.Sprint(h))
				mu.Unlock()
			}
		}
	}()
	d.t.Cleanup(func() {
		close(stop)
		wg.Wait()
		if len(both) > 0 {
			d.t.Errorf("the shared address %s was on two nodes at once: %v", addr, both[0])
		}
	})
}

// TestRecipeFreeswitch: seed 001's hot standby behind one shared IP. The
// node holding the SIP service loses power (isolated from every network);
// the SIP service answers on the shared IP again, from the other node.
func TestRecipeFreeswitch(t *testing.T) {
	need(t)
	t.Parallel()
	d := up(t, "freeswitch", watchdogFile(t))
	vip := d.addrs["vip"]
	d.vipSampler(vip)
	fs1, fs2 := d.nodes["fs1"], d.nodes["fs2"]

	// Status: the three nodes with their roles, the group on one node.
	var holder string
	d.waitStatus(fs2, 30*time.Second, "group sip started", func(s *protocol.Snapshot) (bool, string) {
		g, ok := group(s, "sip")
		holder = g.Active
		return ok && g.State == "started" && g.Active != "", fmt.Sprintf("%+v", g)
	})
	s, err := d.status(fs1)
	if err != nil {
		t.Fatal(err)
	}
	for name, role := range map[string]string{"fs1": "pbx", "fs2": "pbx", "wit": "witness"} {
		n, ok := s.FindNode(name)
		if !ok || n.Role != role {
			t.Errorf("status: node %s role %q (found %v), want %q", name, n.Role, ok, role)
		}
	}
	agentWait(t, 10*time.Second, "SIP answered on the shared IP", func() (bool, string) { return d.sipOK(vip) })
	if h := d.holders(vip); !slices.Equal(h, []string{holder}) {
		t.Fatalf("shared IP on %v, group on %s", h, holder)
	}

	// The holder's power goes: nothing in or out.
	old, other := fs1, fs2
	if holder == "fs2" {
		old, other = fs2, fs1
	}
	cut := time.Now()
	old.host.Isolate()
	d.waitGroup(other, "sip", other.name, 30*time.Second)
	agentWait(t, 10*time.Second, "SIP answered on the shared IP after the takeover", func() (bool, string) { return d.sipOK(vip) })
	if h := d.holders(vip); !slices.Equal(h, []string{other.name}) {
		t.Fatalf("after the takeover the shared IP is on %v, want only %s", h, other.name)
	}
	t.Logf("%s lost power; SIP answered on %s from %s %.1fs later", old.name, vip, other.name, time.Since(cut).Seconds())
}
