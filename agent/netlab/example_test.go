//go:build linux

package netlab_test

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/netlab"
)

// A local cluster: two nodes, a witness and a client on one net; the
// nodes' agents run as processes inside their hosts.
func ExampleNew() {
	var t *testing.T // the test's own
	lab := netlab.New(t)
	lan := lab.Net("lan", "10.81.1.0/24")
	var nodes []*netlab.Host
	for i, name := range []string{"pbx-a1", "pbx-a2", "witness", "client"} {
		h := lab.Host(name)
		h.Attach(lan, fmt.Sprintf("10.81.1.%d/24", i+2))
		nodes = append(nodes, h)
	}
	a1, a2 := nodes[0], nodes[1]
	agent := a1.Command("/path/to/ha-agent", "--config", "/path/to/pbx-a1.toml")
	agent.Env = append(os.Environ(), "HATUI_NODE=pbx-a1")
	p := a1.Start(agent) // output in p.Log(), killed at cleanup

	// Watch the VIP (cheap enough for every 50 ms).
	held, err := a2.HasAddr("10.81.1.100")
	_, _ = held, err

	lab.Cut(a1, a2) // heartbeat lost both ways, witness still sees both
	lab.Heal(a1, a2)
	a1.Isolate() // nothing in or out but loopback
	a1.Rejoin()
	p.Kill() // a crash: SIGKILL to the whole process group
}

// Geo: three sites and an arbitrator joined by a WAN router that holds
// every packet 40 ms each way.
func ExampleRouter_SetDelay() {
	var t *testing.T // the test's own
	lab := netlab.New(t)
	nets := map[*netlab.Net]string{
		lab.Net("site-a", "10.84.1.0/24"): "10.84.1.1/24",
		lab.Net("site-b", "10.84.2.0/24"): "10.84.2.1/24",
		lab.Net("site-c", "10.84.3.0/24"): "10.84.3.1/24",
		lab.Net("arb", "10.84.9.0/24"):    "10.84.9.1/24",
	}
	wan := lab.Router("wan", nets) // eth0..eth3 in the order the nets were made
	for n := range nets {
		h := lab.Host("node-" + n.Name())
		// Attach after Router: the host gets routes to the other
		// sites through the router by itself.
		h.Attach(n, n.Prefix().Addr().Next().Next().String()+"/24")
	}
	wan.SetDelay(40 * time.Millisecond)

	// A socket opened inside Do belongs to the host, and may be used
	// from anywhere afterwards.
	var ln net.Listener
	_ = wan.Do(func() (err error) {
		ln, err = net.Listen("tcp", "10.84.9.1:7000")
		return err
	})
	_ = ln
	wan.SetDelay(0) // the kernel's fast path again
}

// SIPp inside a host: in the foreground (no -bg, whose daemon would leave
// the process group), without stdin, with a working directory for its
// files.
func ExampleHost_Start() {
	var t *testing.T // the test's own
	lab := netlab.New(t)
	lan := lab.Net("lan", "10.81.6.0/24")
	uas := lab.Host("uas")
	uas.Attach(lan, "10.81.6.2/24")
	cmd := uas.Command("sipp", "-sn", "uas", "-i", uas.IP(lan), "-p", "5060", "-nostdin", "-m", "1")
	cmd.Dir = t.TempDir()
	p := uas.Start(cmd)
	_ = p.Wait()
}
