package demo

import (
	"fmt"
	"strings"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/geosite"
)

// The demo's geo manager: every node is a geo voter (the arbitrator too,
// which never serves), site a holds the ticket at first, and each PBX
// site's service is its local cluster. The dead man's timer is short
// enough to watch run out.
func init() { features = append(features, geoFeature) }

// DemoDeadMan is the demo's dead man's timer.
const DemoDeadMan = 3 * time.Minute

func geoFeature(d *Deployment, n *Node) (agent.FeatureFunc, error) {
	subnet := n.IP[:strings.LastIndex(n.IP, ".")]
	g := &n.cfg.Geo
	*g = config.Geo{
		Enabled:       true,
		Bind:          n.IP + ":7950",
		Mode:          "auto",
		InitialHolder: "a",
		DeadMan:       config.Duration{Duration: DemoDeadMan},
		Lease:         config.Duration{Duration: 5 * time.Second},
		AcquireAfter:  config.Duration{Duration: 3 * time.Second},
		Arbitrator:    n.Role == "arbitrator",
		// Quick to notice a site cut off, for the demo's sake.
		ProbeInterval: config.Duration{Duration: 500 * time.Millisecond},
		ProbeTimeout:  config.Duration{Duration: 250 * time.Millisecond},
	}
	for i, l := range Layout {
		ip := fmt.Sprintf("%s.%d", subnet, i+1)
		g.Voters = append(g.Voters, config.GeoVoter{Node: l.Node, Site: l.Site, Addr: ip + ":7947", Arbitrator: l.Role == "arbitrator"})
		if ip != n.IP {
			g.Join = append(g.Join, ip+":7950")
		}
	}
	if err := n.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo geo for %s: %w", n.Name, err)
	}
	return geosite.New, nil
}
