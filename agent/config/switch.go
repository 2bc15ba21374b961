package config

// Switch configures one line switch or power switch driven by this node:
// a [[switch]] table.
type Switch struct {
	Name string `toml:"name"`
}

// validate checks the i-th [[switch]] table.
func (s *Switch) validate(c *Config, i int) error { return nil }
