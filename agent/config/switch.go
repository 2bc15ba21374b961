package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hatui/hatui/switchdrv"
	// The drivers register themselves, so that validation can name them
	// and check each switch's options the way the agent will open them.
	_ "github.com/hatui/hatui/switchdrv/drivers"
)

// Switch kinds.
const (
	SwitchLine  = "line"  // moves phone lines between nodes
	SwitchPower = "power" // switches the power of nodes (fencing)
)

// Switch configures one line switch or power switch driven by this node:
// a [[switch]] table. One node drives each device; the others reach it
// through that node's agent.
//
//	[[switch]]
//	name = "lines-a"
//	kind = "line"
//	driver = "berofos"
//	options = { address = "192.0.2.7", password = "secret" }
//	positions = { pbx-a1 = "A-B", pbx-a2 = "A-D" }
//	follow = true
type Switch struct {
	// Name identifies the switch in status and in the console's verbs; it
	// must be unique in the deployment.
	Name string `toml:"name"`
	// Kind is "line" or "power".
	Kind string `toml:"kind"`
	// Driver is a registered switchdrv driver: "berofos", "rhino",
	// "iboot" or "fence".
	Driver string `toml:"driver"`
	// Options are the driver's options (see the driver's documentation),
	// all strings.
	Options map[string]string `toml:"options"`

	// Positions (line switches) maps each node to the switch position
	// that connects the lines to it.
	Positions map[string]string `toml:"positions"`
	// Follow (line switches) makes the lines follow the node active for
	// the cluster's service group.
	Follow bool `toml:"follow"`
	// Group (line switches) names the service group whose active node the
	// lines follow; empty means the cluster's first group.
	Group string `toml:"group"`
	// Confirm is N: observations of a new active node before the lines
	// move (0: the default, 3).
	Confirm int `toml:"confirm"`
	// ConfirmBack is M: observations before the lines move back to where
	// they last were (0: the default, 5).
	ConfirmBack int `toml:"confirm_back"`

	// Outlets (power switches) maps each outlet to the node it powers.
	Outlets map[string]string `toml:"outlets"`

	// Interval is how often the switch is read, and how often the active
	// node is observed when following (default 1s).
	Interval Duration `toml:"interval"`
}

// DefaultSwitchInterval is how often a switch is read when its interval
// is not set.
const DefaultSwitchInterval = time.Second

// DriverOptions returns the options in the form switchdrv.Open takes.
func (s *Switch) DriverOptions() switchdrv.Options {
	o := switchdrv.Options{}
	for k, v := range s.Options {
		o[k] = v
	}
	return o
}

// PollInterval returns Interval, or its default when unset.
func (s *Switch) PollInterval() time.Duration {
	if s.Interval.Duration > 0 {
		return s.Interval.Duration
	}
	return DefaultSwitchInterval
}

// validate checks the i-th [[switch]] table: its kind, its driver and the
// driver's options (by opening the device, which does no I/O), and its
// positions or outlets.
func (s *Switch) validate(c *Config, i int) error {
	key := func(k string) string { return fmt.Sprintf("switch[%d].%s", i, k) }
	bad := func(k, problem, expected string) error {
		return &Error{File: c.File, Key: key(k), Problem: problem, Expected: expected}
	}
	const nameForm = "1–63 letters, digits, '.', '_' or '-', starting with a letter or digit"
	if s.Name == "" {
		return bad("name", "missing", nameForm)
	}
	if !nameRE.MatchString(s.Name) {
		return bad("name", fmt.Sprintf("%q is not a valid name", s.Name), nameForm)
	}
	for j := 0; j < i; j++ {
		if c.Switches[j].Name == s.Name {
			return bad("name", fmt.Sprintf("%q is also the name of switch[%d]", s.Name, j), "a name used by one switch only")
		}
	}
	if s.Kind != SwitchLine && s.Kind != SwitchPower {
		return bad("kind", fmt.Sprintf("%q is not a kind of switch", s.Kind), `"line" or "power"`)
	}
	known := switchdrv.Drivers()
	if s.Driver == "" {
		return bad("driver", "missing", "one of "+strings.Join(known, ", "))
	}
	if !slices.Contains(known, s.Driver) {
		return bad("driver", fmt.Sprintf("no driver named %q", s.Driver), "one of "+strings.Join(known, ", "))
	}
	dev, err := switchdrv.Open(s.Driver, s.DriverOptions())
	if err != nil {
		return bad("options", err.Error(), "the options documented for the "+s.Driver+" driver, every value a string")
	}
	defer dev.Close()
	if s.Confirm < 0 || s.Confirm > 100 {
		return bad("confirm", fmt.Sprintf("%d is out of range", s.Confirm), "a whole number from 1 to 100 (0 or unset: 3)")
	}
	if s.ConfirmBack < 0 || s.ConfirmBack > 100 {
		return bad("confirm_back", fmt.Sprintf("%d is out of range", s.ConfirmBack), "a whole number from 1 to 100 (0 or unset: 5)")
	}
	if s.Interval.Duration != 0 && s.Interval.Duration < 50*time.Millisecond {
		return bad("interval", fmt.Sprintf("%v is too short", s.Interval.Duration), "a duration of at least 50ms, such as \"1s\"")
	}
	for _, node := range sortedKeys(s.Positions) {
		if !nameRE.MatchString(node) {
			return bad("positions", fmt.Sprintf("%q is not a node name", node), "node = \"position\" pairs, such as pbx-a1 = \"A-B\"")
		}
	}
	for _, outlet := range sortedKeys(s.Outlets) {
		if node := s.Outlets[outlet]; !nameRE.MatchString(node) {
			return bad("outlets", fmt.Sprintf("outlet %q: %q is not a node name", outlet, node), "outlet = \"node\" pairs, such as 1 = \"pbx-b2\"")
		}
	}

	if s.Kind == SwitchPower {
		if _, err := switchdrv.AsPowerSwitch(dev); err != nil {
			return bad("driver", fmt.Sprintf("%s is not a power switch", s.Driver), `kind = "line", or a power switch driver such as iboot or fence`)
		}
		for _, k := range []struct {
			set  bool
			name string
		}{{len(s.Positions) > 0, "positions"}, {s.Follow, "follow"}, {s.Group != "", "group"},
			{s.Confirm != 0, "confirm"}, {s.ConfirmBack != 0, "confirm_back"}} {
			if k.set {
				return bad(k.name, "is for line switches only", `no `+k.name+` on a switch of kind = "power"`)
			}
		}
		return nil
	}

	ls, err := switchdrv.AsLineSwitch(dev)
	if err != nil {
		return bad("driver", fmt.Sprintf("%s is not a line switch", s.Driver), `kind = "power", or a line switch driver such as berofos or rhino`)
	}
	if len(s.Outlets) > 0 {
		return bad("outlets", "is for power switches only", `no outlets on a switch of kind = "line"`)
	}
	caps := ls.Capabilities()
	var have []string
	for _, p := range caps.Positions {
		have = append(have, string(p))
	}
	for _, node := range sortedKeys(s.Positions) {
		if p := s.Positions[node]; !caps.Has(switchdrv.Position(p)) {
			return bad("positions", fmt.Sprintf("node %s: %s has no position %q", node, s.Driver, p), "one of "+strings.Join(have, ", "))
		}
	}
	if s.Follow && len(s.Positions) == 0 {
		return bad("positions", "missing: the lines cannot follow the active node without them",
			"node = \"position\" pairs, such as positions = { pbx-a1 = \""+firstOr(have, "A-B")+"\" }")
	}
	if s.Group != "" && !nameRE.MatchString(s.Group) {
		return bad("group", fmt.Sprintf("%q is not a group name", s.Group), nameForm)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func firstOr(xs []string, def string) string {
	if len(xs) > 0 {
		return xs[0]
	}
	return def
}
