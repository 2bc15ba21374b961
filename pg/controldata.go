package pg

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ControlData is what pg_controldata says of a data directory. It is how
// the state of a stopped instance is known without starting it (starting
// writes to the data directory, which a cold start must not do).
type ControlData struct {
	SystemID string
	// State is "Database cluster state": "in production", "shut down",
	// "shut down in recovery", "in archive recovery", "in crash recovery"...
	State              string
	CheckpointLSN      LSN
	RedoLSN            LSN
	Timeline           uint32 // Latest checkpoint's TimeLineID
	MinRecoveryLSN     LSN    // Minimum recovery ending location
	MinRecoveryTimline uint32
	CheckpointTime     time.Time
}

// WasStandby reports whether the instance was last running in recovery.
func (c ControlData) WasStandby() bool {
	return c.State == "shut down in recovery" || c.State == "in archive recovery"
}

// Position is the furthest WAL position the control file vouches for.
// WAL written after the last checkpoint may go further; for a cleanly
// stopped instance the shutdown checkpoint is the end.
func (c ControlData) Position() (uint32, LSN) {
	tl, lsn := c.Timeline, c.CheckpointLSN
	if c.MinRecoveryLSN > lsn {
		lsn = c.MinRecoveryLSN
		if c.MinRecoveryTimline > tl {
			tl = c.MinRecoveryTimline
		}
	}
	return tl, lsn
}

// ParseControlData reads pg_controldata's output (in the C locale).
func ParseControlData(out string) (ControlData, error) {
	var c ControlData
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch k {
		case "Database system identifier":
			if _, err = strconv.ParseUint(v, 10, 64); err == nil {
				c.SystemID = v
				seen++
			}
		case "Database cluster state":
			c.State = v
			seen++
		case "Latest checkpoint location":
			c.CheckpointLSN, err = ParseLSN(v)
			seen++
		case "Latest checkpoint's REDO location":
			c.RedoLSN, err = ParseLSN(v)
		case "Latest checkpoint's TimeLineID":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			c.Timeline = uint32(n)
			seen++
		case "Minimum recovery ending location":
			c.MinRecoveryLSN, err = ParseLSN(v)
		case "Min recovery ending loc's timeline":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			c.MinRecoveryTimline = uint32(n)
		case "Time of latest checkpoint":
			// Only informative; the format follows the server's locale.
			if t, perr := time.Parse("Mon Jan _2 15:04:05 2006", v); perr == nil {
				c.CheckpointTime = t
			}
		}
		if err != nil {
			return ControlData{}, fmt.Errorf("pg_controldata output, %q: %w", k, err)
		}
	}
	if seen < 4 {
		return ControlData{}, fmt.Errorf("pg_controldata output lacks the system identifier, state, checkpoint or timeline (is it from PostgreSQL 9.6 or later, in the C locale?)")
	}
	return c, nil
}
