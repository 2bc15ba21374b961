//go:build linux

package geosite_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/agent/netlab"
)

// TestGeoDrivesLocalClusters runs the whole stack in namespaces: two
// sites of two PBX nodes, each site a local failover cluster whose group
// is a virtual IP and a sipp UAS, and an arbitrator, joined by a WAN with
// 40 ms delay; the geo manager's service is the site's cluster
// (service = "cluster", the default with [failover]). Site a is cut off
// the WAN (its two nodes still see each other): the ticket moves to b,
// and when the dead man's timer runs out site a's cluster has stopped its
// VIP by itself and site b's cluster serves it. A client on both sites'
// nets probes both VIPs every 50 ms: never both answer.
func TestGeoDrivesLocalClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("netns acceptance test")
	}
	need(t, "sipp", "ss")
	bin := haAgent(t)
	lab := netlab.New(t)
	scen, err := filepath.Abs("../health/testdata/sipp-uas-options.xml")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := filepath.Abs("testdata/sip-service.sh")
	if err != nil {
		t.Fatal(err)
	}
	type member struct {
		name, site, ip string
		host           *netlab.Host
		dir            string
		proc           *netlab.Proc
	}
	nets := map[string]*netlab.Net{}
	attach := map[*netlab.Net]string{}
	vip := map[string]string{}
	var members []*member
	for i, site := range []string{"a", "b", "arb"} {
		n := lab.Net(site, fmt.Sprintf("10.92.%d.0/24", i+1))
		nets[site], attach[n] = n, fmt.Sprintf("10.92.%d.1/24", i+1)
		vip[site] = fmt.Sprintf("10.92.%d.100", i+1)
		count := 2
		if site == "arb" {
			count = 1
		}
		for j := range count {
			members = append(members, &member{name: fmt.Sprintf("%s%d", site, j+1), site: site, ip: fmt.Sprintf("10.92.%d.%d", i+1, 11+j)})
		}
	}
	router := lab.Router("wan", attach)
	router.SetDelay(40 * time.Millisecond)
	var gossipJoin, geoJoin []string
	var geoVoters strings.Builder
	for _, m := range members {
		m.host = lab.Host(m.name)
		m.host.Attach(nets[m.site], m.ip+"/24")
		m.dir = filepath.Join(lab.Dir(), m.name)
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		gossipJoin = append(gossipJoin, m.ip+":7946")
		geoJoin = append(geoJoin, m.ip+":7950")
		fmt.Fprintf(&geoVoters, "[[geo.voter]]\nnode = %q\nsite = %q\naddr = \"%s:7947\"\narbitrator = %v\n", m.name, m.site, m.ip, m.site == "arb")
	}
	for _, m := range members {
		var extra strings.Builder
		role := "pbx"
		if m.site == "arb" {
			role = "arbitrator"
		} else {
			fmt.Fprintf(&extra, "[failover]\nenabled = true\ngroup = \"pbx-%s\"\nactivate = true\nallow_two_node_risk = true\nallow_agent_crash_risk = true\n", m.site)
			for _, o := range members {
				if o.site == m.site {
					fmt.Fprintf(&extra, "[[failover.voter]]\nname = %q\naddr = \"%s:7947\"\n", o.name, o.ip)
				}
			}
			extra.WriteString("[failover.timing]\nkeepalive = \"100ms\"\nwarntime = \"400ms\"\ndeadtime = \"1s\"\ninitdead = \"2s\"\nmonitor_interval = \"500ms\"\n")
			script := filepath.Join(m.dir, "sip.sh")
			body := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in\nstart|stop) exec %s \"$1\" %s %s %s ;;\nstatus) [ -f %[3]s/sipp.pid ] && kill -0 \"$(cat %[3]s/sipp.pid)\" 2>/dev/null && exit 0; exit 3 ;;\nesac\nexit 0\n",
				svc, vip[m.site], m.dir, scen)
			if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&extra, "[[failover.resource]]\nname = \"vip\"\ntype = \"vip\"\nstop_timeout = \"2s\"\nparams = { ip = \"%s/24\", interface = \"eth0\", arp_count = \"2\", arp_interval = \"50ms\" }\n", vip[m.site])
			fmt.Fprintf(&extra, "[[failover.resource]]\nname = \"sip\"\ntype = \"exec\"\nstart_timeout = \"10s\"\nstop_timeout = \"5s\"\nparams = { path = %q }\n", script)
		}
		fmt.Fprintf(&extra, `[geo]
enabled = true
bind = "%s:7950"
join = [%s]
arbitrator = %v
initial_holder = "a"
dead_man = "20s"
lease = %q
renewal = %q
acquire_after = %q
safety_margin = %q
service_timeout = "30s"
probe_interval = "500ms"
probe_timeout = "250ms"
suspicion_mult = 4
%s`, m.ip, agenttest.Quote(geoJoin), m.site == "arb", nLease, nRenewal, nAcquire, nMargin, geoVoters.String())
		cfg := agenttest.Render(agenttest.Node{Deployment: "geoclu", Name: m.name, Site: m.site, Role: role, Dir: m.dir, IP: m.ip,
			Join: gossipJoin, PeerTimeout: "5s", Gossip: "probe_interval = \"500ms\"\nprobe_timeout = \"250ms\"", Extra: extra.String()})
		path := filepath.Join(m.dir, "ha-agent.toml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		m.proc = m.host.Start(m.host.Command(bin, "--config", path))
	}

	client := lab.Host("client")
	client.Attach(nets["a"], "10.92.1.9/24")
	client.Attach(nets["b"], "10.92.2.9/24")
	// The client reaches each site on its own net, never through the
	// router: a cut WAN must not hide a site's VIP from it.
	for _, r := range [][]string{{"10.92.1.0/24", client.Iface(nets["a"]), "10.92.1.9"}, {"10.92.2.0/24", client.Iface(nets["b"]), "10.92.2.9"}} {
		if out, err := client.Command("ip", "route", "replace", r[0], "dev", r[1], "src", r[2]).CombinedOutput(); err != nil {
			t.Fatalf("client route %v: %v: %s", r, err, out)
		}
	}
	socks := map[string]net.PacketConn{}
	if err := client.Do(func() error {
		for site, local := range map[string]string{"a": "10.92.1.9", "b": "10.92.2.9"} {
			c, err := net.ListenPacket("udp4", local+":0")
			if err != nil {
				return err
			}
			socks[site] = c
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // one probe at a time per socket
	answers := func(site string, d time.Duration) bool {
		mu.Lock()
		defer mu.Unlock()
		return probeOnce(socks[site], vip[site], d)
	}
	agenttest.WaitFor(t, 90*time.Second, "site a's cluster to serve its VIP", func() (bool, string) {
		return answers("a", 300*time.Millisecond), "no SIP answer from " + vip["a"]
	})
	if answers("b", 300*time.Millisecond) {
		t.Fatal("site b serves too, before anything happened")
	}

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, m := range members {
			for _, line := range strings.Split(m.proc.Log(), "\n") {
				if strings.Contains(line, "pbx-") || strings.Contains(line, "action") || strings.Contains(line, "geo "+m.name) {
					t.Logf("%s| %s", m.name, line)
				}
			}
		}
	})
	// The sampler: never both VIPs at once.
	var both, rounds atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			a, b := answers("a", 100*time.Millisecond), answers("b", 100*time.Millisecond)
			rounds.Add(1)
			if a && b {
				if both.Add(1) == 1 {
					t.Errorf("both sites' VIPs answer SIP at %s", time.Now().Format(time.RFC3339Nano))
				}
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		t.Logf("sampler: %d rounds, both answered in %d", rounds.Load(), both.Load())
	}()

	// Cut site a off the WAN at the router: a1 and a2 still see each
	// other, so their cluster keeps its quorum of two.
	router.LinkDown(nets["a"])
	w := &wan{t: t, sites: map[string]*site{}}
	for _, m := range members {
		w.sites[m.name] = &site{name: m.site, node: m.name, sock: agenttest.Socket(m.dir)}
	}
	exp := w.waitPending("a", "b", 60*time.Second, "b1", "arb1")
	if answers("b", 300*time.Millisecond) {
		t.Fatal("site b serves while the failover is only pending")
	}
	deadline := exp.Add(30 * time.Second)
	for !answers("b", 300*time.Millisecond) {
		if time.Now().After(deadline) {
			for _, m := range members {
				if m.site == "b" {
					out, _ := m.host.Command("sh", "-c", "ip -o addr; ss -Hlun; cat "+m.dir+"/sipp.log 2>&1 | tail -5").CombinedOutput()
					t.Logf("%s:\n%s", m.name, out)
				}
			}
			t.Fatalf("site b's cluster does not serve after the timer's expiry: %s", describe(w.geo("b1")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if early := time.Until(exp); early > 0 {
		t.Errorf("site b served %v before the dead man's timer expired", early)
	}
	if answers("a", 300*time.Millisecond) {
		t.Error("site a still serves after the expiry")
	}
	router.LinkUp(nets["a"])
	w.waitReach("a", true, 60*time.Second, "arb1")
	if !answers("b", time.Second) || answers("a", 300*time.Millisecond) {
		t.Errorf("after the heal: a answers=%v, b answers=%v; want b only", answers("a", 300*time.Millisecond), answers("b", time.Second))
	}
}
