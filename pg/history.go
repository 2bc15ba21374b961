package pg

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// HistoryEntry is one line of a timeline history file: Timeline ended at
// Switch, where the next timeline of this history forked off.
type HistoryEntry struct {
	Timeline uint32
	Switch   LSN
}

// ParseHistory reads the content of a timeline history file
// ("00000003.history"): one "timeline<TAB>switch point<TAB>reason" line
// per ancestor, oldest first. Blank lines and comments are skipped, as
// PostgreSQL does.
func ParseHistory(content string) ([]HistoryEntry, error) {
	var out []HistoryEntry
	sc := bufio.NewScanner(strings.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %d %q: want a timeline and a switch point", n, line)
		}
		tl, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || tl == 0 {
			return nil, fmt.Errorf("timeline history line %d: %q is not a timeline", n, f[0])
		}
		sw, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d: %w", n, err)
		}
		if len(out) > 0 && (uint32(tl) <= out[len(out)-1].Timeline || sw < out[len(out)-1].Switch) {
			return nil, fmt.Errorf("timeline history line %d: timelines and switch points must increase", n)
		}
		out = append(out, HistoryEntry{Timeline: uint32(tl), Switch: sw})
	}
	return out, sc.Err()
}

// ReadHistory returns the ancestors of timeline tl on the server at
// conninfo. It asks over a replication connection (TIMELINE_HISTORY), so
// the role a standby replicates with is enough; timeline 1 has none.
func ReadHistory(ctx context.Context, conninfo string, tl uint32) ([]HistoryEntry, error) {
	if tl <= 1 {
		return nil, nil
	}
	ci, err := ParseConnInfo(conninfo)
	if err != nil {
		return nil, err
	}
	connector, err := newConnector(ctx, ci.With("replication", "true").String())
	if err != nil {
		return nil, fmt.Errorf("reading the history of timeline %d from %s: %w", tl, ci.Endpoint(), err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var name string
	var content []byte
	// A replication connection speaks the simple query protocol only,
	// which lib/pq uses for a query without arguments.
	q := fmt.Sprintf("TIMELINE_HISTORY %d", tl)
	if err := db.QueryRowContext(ctx, q).Scan(&name, &content); err != nil {
		return nil, fmt.Errorf("reading the history of timeline %d from %s: %w", tl, ci.Endpoint(), err)
	}
	h, err := ParseHistory(string(content))
	if err != nil {
		return nil, fmt.Errorf("history of timeline %d from %s: %w", tl, ci.Endpoint(), err)
	}
	return h, nil
}

// onHistory says whether position p lies on the history of a master now
// on timeline mtl with its WAL ending at mlsn, hist being mtl's ancestors.
// ahead is set when p is on a later timeline, or on the master's timeline
// past its end: the local data holds WAL the master never had.
func onHistory(p Position, mtl uint32, mlsn LSN, hist []HistoryEntry) (ok, ahead bool, why string) {
	switch {
	case p.Timeline == mtl && p.LSN <= mlsn:
		return true, false, ""
	case p.Timeline == mtl:
		return false, true, fmt.Sprintf("the local data reaches %s on timeline %d, past the master's %s: it holds WAL the master never had", p.LSN, mtl, mlsn)
	case p.Timeline > mtl:
		// A later timeline is ahead whatever its LSN (see Position.Ahead):
		// it was promoted, and may hold writes the master never saw.
		return false, true, fmt.Sprintf("the local data is on timeline %d, newer than the master's %d: it was promoted and may hold writes the master never had", p.Timeline, mtl)
	}
	for _, e := range hist {
		if e.Timeline != p.Timeline {
			continue
		}
		if p.LSN <= e.Switch {
			return true, false, ""
		}
		return false, false, fmt.Sprintf("the local data reaches %s on timeline %d, but the master's history left timeline %d at %s: the local data went on past the fork",
			p.LSN, p.Timeline, p.Timeline, e.Switch)
	}
	return false, false, fmt.Sprintf("timeline %d of the local data is not in the history of the master's timeline %d", p.Timeline, mtl)
}
