package partition

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/protocol"
)

func statusOf(p *membership.Pool, name string) protocol.Membership {
	for _, m := range p.Members() {
		if m.Name == name {
			return m.Status
		}
	}
	return protocol.MemberUnknown
}

func waitStatus(t *testing.T, p *membership.Pool, name string, want protocol.Membership) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if statusOf(p, name) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became %s (is %s)", name, want, statusOf(p, name))
}

func TestCutAndHeal(t *testing.T) {
	n := NewNetwork()
	key := make([]byte, 32)
	rand.Read(key)
	var pools []*membership.Pool
	for i := 0; i < 3; i++ {
		ip := fmt.Sprintf("127.0.40.%d", i+1)
		p, err := membership.Start(membership.Options{
			Name: fmt.Sprintf("p%d", i), BindAddr: ip + ":7946", Keys: [][]byte{key},
			WrapTransport: func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport { return n.Wrap(ip, t) },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Shutdown()
		if i > 0 {
			if _, err := p.Join([]string{pools[0].Addr()}); err != nil {
				t.Fatal(err)
			}
		}
		pools = append(pools, p)
	}
	waitStatus(t, pools[0], "p2", protocol.MemberAlive)
	waitStatus(t, pools[1], "p2", protocol.MemberAlive)

	n.Isolate(1, "127.0.40.3")
	waitStatus(t, pools[0], "p2", protocol.MemberFailed)
	waitStatus(t, pools[1], "p2", protocol.MemberFailed)
	waitStatus(t, pools[2], "p0", protocol.MemberFailed)
	if statusOf(pools[0], "p1") != protocol.MemberAlive {
		t.Fatalf("the uncut pair lost each other")
	}

	n.Heal("127.0.40.3")
	waitStatus(t, pools[0], "p2", protocol.MemberAlive)
	waitStatus(t, pools[2], "p0", protocol.MemberAlive)
}
