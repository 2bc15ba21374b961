package pg

import (
	"context"
	"fmt"
	"strings"

	"github.com/lib/pq"
)

// SyncNames is the synchronous_standby_names value that makes a commit
// wait for any one of the named standbys (their application_name, which
// is their node name): "ANY 1 (\"pbx-a2\")". No names give "", which
// turns synchronous replication off.
func SyncNames(standbys []string) string {
	if len(standbys) == 0 {
		return ""
	}
	q := make([]string, len(standbys))
	for i, s := range standbys {
		q[i] = `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return fmt.Sprintf("ANY 1 (%s)", strings.Join(q, ", "))
}

// SetSynchronousStandbys sets synchronous_standby_names on this instance
// by ALTER SYSTEM and a reload, so that a commit on it returns only once
// a standby named in value has flushed it (with synchronous_commit on).
// It works on a standby too, where the setting waits for its promotion.
func (in *Instance) SetSynchronousStandbys(ctx context.Context, value string) error {
	db, conn, err := open(ctx, in.ConnInfo)
	if err != nil {
		return fmt.Errorf("setting synchronous_standby_names on %s: %w", in.Node, err)
	}
	defer db.Close()
	defer conn.Close()
	var cur string
	if err := conn.QueryRowContext(ctx, "SHOW synchronous_standby_names").Scan(&cur); err != nil {
		return fmt.Errorf("reading synchronous_standby_names on %s: %w", in.Node, err)
	}
	if cur == value {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+pq.QuoteLiteral(value)); err != nil {
		return fmt.Errorf("setting synchronous_standby_names on %s: %w", in.Node, err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reloading the configuration of %s: %w", in.Node, err)
	}
	return nil
}
