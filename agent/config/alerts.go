package config

// Alerts configures where alerts go (stub; see agent/alert).
type Alerts struct{}

func (a *Alerts) validate(c *Config) error { return nil }
