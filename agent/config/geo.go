package config

import "fmt"

// Geo configures the geo pool (WAN timings) for the geo manager.
type Geo struct {
	Enabled bool     `toml:"enabled"`
	Bind    string   `toml:"bind"`
	Join    []string `toml:"join"`
	// Mode is "auto" (the dead man's switch fails over at expiry) or
	// "manual" (never by itself).
	Mode string `toml:"mode"`
	// DeadMan is how long staff have to confirm or abort a geo failover.
	DeadMan      Duration `toml:"dead_man"`
	Lease        Duration `toml:"lease"`
	AcquireAfter Duration `toml:"acquire_after"`
	Arbitrator   bool     `toml:"arbitrator"`
}

func (g *Geo) validate(c *Config) error {
	bad := func(key, problem, want string) error {
		return &Error{File: c.File, Key: key, Problem: problem, Expected: want}
	}
	if g.Mode != "auto" && g.Mode != "manual" {
		return bad("geo.mode", fmt.Sprintf("%q is not a mode", g.Mode), `"auto" or "manual"`)
	}
	if g.DeadMan.Duration <= 0 {
		return bad("geo.dead_man", "must be positive", "a duration such as \"2h\"")
	}
	if g.Lease.Duration <= 0 || g.AcquireAfter.Duration < 0 {
		return bad("geo.lease", "lease must be positive and acquire_after not negative", "durations such as lease = \"10s\", acquire_after = \"5s\"")
	}
	return nil
}
