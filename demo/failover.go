package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/cluster"
	"github.com/hatui/hatui/agent/config"
)

// The demo's service groups: each site's two PBX nodes run local failover
// of a group with a simulated virtual IP and PBX (exec resources keeping a
// state file in the node's directory). The clusters start healthy, as a
// well-built site would: each node can fence its peer through the iBoot
// that powers it (switches.go), and the two nodes have a second heartbeat
// path besides Serf, a dedicated NIC (UDP on their own addresses, which a
// site cut leaves alone, as a crossover cable would be).
func init() {
	features = append(features, failoverFeature)
	machines = append(machines, machine{crash: killResources})
}

// nicPort is the demo's dedicated-NIC heartbeat port on each PBX node.
const nicPort = 7949

// demoFailoverTiming detects a dead peer in 2 s, quick enough to watch.
var demoFailoverTiming = config.FailoverTiming{
	Keepalive:       config.Duration{Duration: 200 * time.Millisecond},
	WarnTime:        config.Duration{Duration: time.Second},
	DeadTime:        config.Duration{Duration: 2 * time.Second},
	InitDead:        config.Duration{Duration: 4 * time.Second},
	FenceRetry:      config.Duration{Duration: 2 * time.Second},
	MonitorInterval: config.Duration{Duration: time.Second},
}

// GroupOf names the demo's service group of a site.
func GroupOf(site string) string { return "pbx-" + site }

// simulated is an exec resource: it keeps <dir>/running.<name> while it
// runs. A killed node's files are removed with it (the machine is gone).
const simulated = `#!/bin/sh
f=%q
case "$1" in
start) touch "$f" ;;
stop) rm -f "$f" ;;
status) [ -e "$f" ] || exit 3 ;;
esac
exit 0
`

func failoverFeature(d *Deployment, n *Node) (agent.FeatureFunc, error) {
	if n.Role != "pbx" {
		return cluster.New, nil // routes the verbs
	}
	dir := filepath.Join(d.dir, n.Name, "resources")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo resources of %s: %w", n.Name, err)
	}
	fc := config.Failover{Enabled: true, Group: GroupOf(n.Site), Activate: true,
		MigrationThreshold: 3, Timing: demoFailoverTiming}
	// From the layout: the site's other nodes may not have started yet.
	subnet := n.IP[:strings.LastIndex(n.IP, ".")]
	nic := config.HeartbeatPath{Kind: "nic", Local: fmt.Sprintf("%s:%d", n.IP, nicPort), Peers: map[string]string{}}
	for i, l := range Layout {
		if l.Site == n.Site && l.Role == "pbx" {
			fc.Voters = append(fc.Voters, config.FailoverVoter{Name: l.Node, Addr: fmt.Sprintf("%s.%d:7947", subnet, i+1)})
			if l.Node != n.Name {
				nic.Peers[l.Node] = fmt.Sprintf("%s.%d:%d", subnet, i+1, nicPort)
			}
		}
	}
	fc.Paths = []config.HeartbeatPath{nic}
	for _, r := range []string{"vip", "asterisk"} {
		path := filepath.Join(dir, r+".sh")
		if err := os.WriteFile(path, fmt.Appendf(nil, simulated, filepath.Join(dir, "running."+r)), 0o755); err != nil {
			return nil, fmt.Errorf("demo resource %s of %s: %w", r, n.Name, err)
		}
		fc.Resources = append(fc.Resources, config.FailoverResource{Name: r, Type: "exec", Params: map[string]string{"path": path},
			StopTimeout: config.Duration{Duration: 2 * time.Second}})
	}
	n.cfg.Failover = fc
	if err := n.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo failover for %s: %w", n.Name, err)
	}
	return cluster.New, nil
}

// killResources removes a killed node's running resources: in the demo a
// crash is the whole machine's.
func killResources(d *Deployment, n *Node) {
	ents, _ := os.ReadDir(filepath.Join(d.dir, n.Name, "resources"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "running.") {
			os.Remove(filepath.Join(d.dir, n.Name, "resources", e.Name()))
		}
	}
}
