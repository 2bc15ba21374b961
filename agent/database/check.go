package database

import (
	"context"
	"fmt"
	"strings"

	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/pg"
)

// CheckConfig is what ha-agent check-config says of a valid [database]
// section that is still risky: the configuration's own warnings, and,
// when the local instance answers before ctx ends, what it shows (slots
// that may keep WAL without limit). An instance that does not answer adds
// nothing: check-config also runs before PostgreSQL is set up.
func CheckConfig(ctx context.Context, cfg *config.Config) []string {
	d := cfg.Database
	if !d.Enabled {
		return nil
	}
	warns := d.Warnings()
	st, err := pg.QueryStatus(ctx, d.ConnInfo)
	if err != nil {
		return warns
	}
	var slots []string
	for _, sl := range st.Slots {
		if !sl.Temporary {
			slots = append(slots, sl.Name)
		}
	}
	if _, set := d.MaxSlotWALKeepBytes(); st.MaxSlotWALKeepSize < 0 && len(slots) > 0 && !set {
		warns = append(warns, fmt.Sprintf("the local PostgreSQL has replication slot(s) %s and max_slot_wal_keep_size is unlimited (-1): "+
			"a standby that stays away keeps WAL here until the disk is full; set max_slot_wal_keep_size in [database] (the agent applies it) or in postgresql.conf",
			strings.Join(slots, ", ")))
	}
	return warns
}
