package demo

import (
	"fmt"
	"strings"
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
// berofos driven by pbx-a1 (the lines follow the active node of site a,
// and its watchdog sends them to pbx-a2 when pbx-a1 stops kicking it),
// and every PBX node is powered through a simulated iBoot driven by the
// other node of its site: that node's fencing device. Power that goes off
// takes the node down with it, as a real outlet would.
const (
	DemoLineSwitch = "lines-a"
	lineDriver     = "pbx-a1"
)

// PowerSwitchOf names the iBoot that powers a demo PBX node: "power-b2"
// feeds pbx-b2.
func PowerSwitchOf(node string) string { return "power-" + strings.TrimPrefix(node, "pbx-") }

func init() {
	features = append(features, switchFeature)
	machines = append(machines, machine{boot: powerOn})
}

// demoSwitches are one deployment's simulated switches.
type demoSwitches struct {
	bero  *berofossim.Sim
	power map[string]*ibootsim.Sim // node fed → its iBoot
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
	// The demo starts steady: the lines already reach pbx-a1, and the
	// watchdog is enabled, as an installer would set it up: when pbx-a1
	// stops kicking it, the device sends the lines to pbx-a2 by itself.
	bero.SetPosition(berofos.PositionAB)
	bero.Set("6_wen", "1")
	bero.Set("6_wstate", "1")
	s := &demoSwitches{bero: bero, power: map[string]*ibootsim.Sim{}}
	closeAll := func() {
		bero.Close()
		for _, ib := range s.power {
			ib.Close()
		}
	}
	for _, l := range Layout {
		if l.Role != "pbx" {
			continue
		}
		ib, err := ibootsim.Start(ibootsim.Options{})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("starting the demo's iBoot of %s: %w", l.Node, err)
		}
		s.power[l.Node] = ib
	}
	switchSims[d] = s
	stop := make(chan struct{})
	go s.watchPower(d, stop)
	d.OnClose(func() {
		// Not waiting for the watcher: it may be waiting for the
		// deployment's lock, which Close holds. It stops at its next
		// look, and a closed deployment ignores it.
		close(stop)
		closeAll()
		switchSimsMu.Lock()
		delete(switchSims, d)
		switchSimsMu.Unlock()
	})
	return s, nil
}

// watchPower takes down a node whose outlet goes off: fencing, or an
// operator's "power off".
func (s *demoSwitches) watchPower(d *Deployment, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for node, ib := range s.power {
			if !ib.On() {
				d.powerLost(node, func() bool { return !ib.On() })
			}
		}
	}
}

// powerOn switches a node's outlet on before it boots: reviving a fenced
// node is powering it on again.
func powerOn(d *Deployment, n *Node) error {
	switchSimsMu.Lock()
	s := switchSims[d]
	switchSimsMu.Unlock()
	if s == nil {
		return nil
	}
	if ib := s.power[n.Name]; ib != nil && !ib.On() {
		ib.SetOn(true)
	}
	return nil
}

// peerOf returns the other PBX node of a node's site, or "".
func peerOf(n *Node) string {
	for _, l := range Layout {
		if l.Site == n.Site && l.Role == "pbx" && l.Node != n.Name {
			return l.Node
		}
	}
	return ""
}

// switchFeature gives every demo node the switch feature (so any agent
// can take a switch verb and route it), pbx-a1 the line switch, and each
// PBX node the iBoot of its peer.
func switchFeature(d *Deployment, n *Node) (agent.FeatureFunc, error) {
	sims, err := switchSimsOf(d)
	if err != nil {
		return nil, err
	}
	var sw []config.Switch
	if n.Name == lineDriver {
		sw = append(sw, config.Switch{
			Name: DemoLineSwitch, Kind: config.SwitchLine, Driver: "berofos",
			Options:   sims.bero.DriverOptions(),
			Positions: map[string]string{"pbx-a1": string(berofos.PositionAB), "pbx-a2": string(berofos.PositionAD)},
			Follow:    true, Confirm: 3, ConfirmBack: 5,
			Interval: config.Duration{Duration: 500 * time.Millisecond},
		})
	}
	if peer := peerOf(n); n.Role == "pbx" && peer != "" {
		sw = append(sw, config.Switch{
			Name: PowerSwitchOf(peer), Kind: config.SwitchPower, Driver: "iboot",
			Options:  sims.power[peer].DriverOptions("tcp"),
			Outlets:  map[string]string{"1": peer},
			Interval: config.Duration{Duration: time.Second},
		})
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
