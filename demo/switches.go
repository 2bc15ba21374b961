package demo

import (
	"fmt"
	"sync"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/lines"
	"github.com/hatui/hatui/switchdrv/berofos"
	"github.com/hatui/hatui/switchdrv/berofos/berofossim"
	"github.com/hatui/hatui/switchdrv/iboot/ibootsim"
)

// The demo's switches: site a's phone lines go through a simulated
// berofos driven by pbx-a1 (the lines follow the active node of site a),
// and pbx-b2 is powered through a simulated iBoot driven by pbx-b1, its
// peer, which is the node that would fence it.
const (
	DemoLineSwitch  = "lines-a"
	DemoPowerSwitch = "power-b2"
	lineDriver      = "pbx-a1"
	powerDriver     = "pbx-b1"
)

func init() { features = append(features, switchFeature) }

// demoSwitches are one deployment's simulated switches.
type demoSwitches struct {
	bero  *berofossim.Sim
	iboot *ibootsim.Sim
}

var (
	switchSimsMu sync.Mutex
	switchSims   = map[*Deployment]*demoSwitches{}
)

// switchSimsOf returns the deployment's simulators, starting them on first
// use. The first use is in Start, for the first node, before any agent
// runs, so the simulators' cleanup can be registered then (Revive holds
// the deployment's lock, so OnClose must not be called from there).
func switchSimsOf(d *Deployment) (*demoSwitches, error) {
	switchSimsMu.Lock()
	defer switchSimsMu.Unlock()
	if s := switchSims[d]; s != nil {
		return s, nil
	}
	bero, err := berofossim.Start(berofossim.Options{})
	if err != nil {
		return nil, fmt.Errorf("starting the demo's berofos: %w", err)
	}
	// The demo starts steady: the lines already reach pbx-a1.
	bero.SetPosition(berofos.PositionAB)
	ib, err := ibootsim.Start(ibootsim.Options{})
	if err != nil {
		bero.Close()
		return nil, fmt.Errorf("starting the demo's iBoot: %w", err)
	}
	s := &demoSwitches{bero: bero, iboot: ib}
	switchSims[d] = s
	d.OnClose(func() {
		bero.Close()
		ib.Close()
		switchSimsMu.Lock()
		delete(switchSims, d)
		switchSimsMu.Unlock()
	})
	return s, nil
}

// switchFeature gives every demo node the switch feature (so any agent
// can take a switch verb and route it), and the two driving nodes their
// [[switch]] tables.
func switchFeature(d *Deployment, n *Node) (agent.FeatureFunc, error) {
	sims, err := switchSimsOf(d)
	if err != nil {
		return nil, err
	}
	var sw []config.Switch
	switch n.Name {
	case lineDriver:
		sw = []config.Switch{{
			Name: DemoLineSwitch, Kind: config.SwitchLine, Driver: "berofos",
			Options:   sims.bero.DriverOptions(),
			Positions: map[string]string{"pbx-a1": string(berofos.PositionAB), "pbx-a2": string(berofos.PositionAD)},
			Follow:    true, Confirm: 3, ConfirmBack: 5,
			Interval: config.Duration{Duration: 500 * time.Millisecond},
		}}
	case powerDriver:
		sw = []config.Switch{{
			Name: DemoPowerSwitch, Kind: config.SwitchPower, Driver: "iboot",
			Options:  sims.iboot.DriverOptions("tcp"),
			Outlets:  map[string]string{"1": "pbx-b2"},
			Interval: config.Duration{Duration: time.Second},
		}}
	}
	// Assigned, not appended: a revived node builds its feature again.
	n.cfg.Switches = sw
	if err := n.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo switches for %s: %w", n.Name, err)
	}
	return lines.NewWith(lines.Options{
		DiscoverTarget: sims.bero.UDPAddr().String(),
		DiscoverWait:   500 * time.Millisecond,
	}), nil
}
