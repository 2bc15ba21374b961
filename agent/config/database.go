package config

// Database configures the node's PostgreSQL instance. An empty section
// means the node runs no database.
type Database struct {
	Enabled bool `toml:"enabled"`
}

// validate checks the [database] section; c is the whole configuration,
// for the file name in errors.
func (d *Database) validate(c *Config) error { return nil }
