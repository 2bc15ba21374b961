package resource

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/pg"
)

// databaseKeys are the parameters of a database resource. The agent fills
// node, conninfo, data_dir, bin_dir, os_user, start_options and peers
// from the node's [database] section when they are left out.
var databaseKeys = []string{"node", "conninfo", "data_dir", "bin_dir", "os_user", "start_options", "peers",
	"max_lag_on_failover", "synchronous"}

// DefaultMaxLagOnFailover is Patroni's default max_lag_on_failover: a
// standby further behind the old master's last known position than this
// is not promoted without an operator's force.
const DefaultMaxLagOnFailover = 1 << 20

// dbTrackInterval is how often a database resource reads its peers to
// know the master's last position (the base of the lag check).
var dbTrackInterval = 500 * time.Millisecond

// databaseResource is the node's PostgreSQL instance as part of the
// service group: running means "master here". Start promotes the local
// standby (or starts the local data as it is when it was the master);
// Stop stops the server, so that a holder that lets the group go (self-
// fence, switchover, stale start) stops accepting writes before another
// node may promote. Rejoining as a standby is the database feature's
// work (agent/database), since it happens on nodes that do not hold the
// group.
type databaseResource struct {
	name    string
	in      *pg.Instance
	peers   []pg.Peer
	maxLag  int64
	sync    bool
	tracker sync.Once

	mu         sync.Mutex
	lastMaster string
	masterLSN  pg.LSN
	masterTL   uint32
}

// ParseDatabasePeers reads a database resource's peers parameter: one
// "NODE CONNINFO" per line (or separated by ';'), e.g.
// "pbx-a2 host=10.0.3.12 port=5432 user=postgres sslmode=disable".
func ParseDatabasePeers(s string) ([]pg.Peer, error) {
	var out []pg.Peer
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ';' }) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		node, ci, ok := strings.Cut(line, " ")
		if !ok || strings.TrimSpace(ci) == "" {
			return nil, fmt.Errorf("peer %q has no connection string", line)
		}
		geo := false
		if n, found := strings.CutSuffix(node, "/geo"); found {
			node, geo = n, true
		}
		if _, err := pg.ParseConnInfo(strings.TrimSpace(ci)); err != nil {
			return nil, fmt.Errorf("peer %s: %w", node, err)
		}
		out = append(out, pg.Peer{Node: node, ConnInfo: strings.TrimSpace(ci), Geo: geo})
	}
	return out, nil
}

// FormatDatabasePeers is the peers parameter for peers.
func FormatDatabasePeers(peers []pg.Peer) string {
	var lines []string
	for _, p := range peers {
		n := p.Node
		if p.Geo {
			n += "/geo"
		}
		lines = append(lines, n+" "+p.ConnInfo)
	}
	return strings.Join(lines, "\n")
}

// parseBytes reads a size in bytes, with an optional binary unit suffix
// (kB, MB, GB as PostgreSQL writes them).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"kB", 1 << 10}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = strings.TrimSpace(v), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}

func newDatabase(spec Spec) (driver, error) {
	p := spec.Params
	bad := func(key, problem, want string) error {
		return &ConfigError{Resource: spec.Name, Key: key, Problem: problem, Want: want}
	}
	for _, k := range []string{"node", "conninfo", "data_dir"} {
		if p[k] == "" {
			return nil, bad(k, "missing", "set it, or enable [database] so the agent fills it in")
		}
	}
	r := &databaseResource{name: spec.Name, maxLag: DefaultMaxLagOnFailover,
		in: &pg.Instance{Node: p["node"], ConnInfo: p["conninfo"], DataDir: p["data_dir"], BinDir: p["bin_dir"],
			OSUser: p["os_user"], StartOptions: p["start_options"]}}
	peers, err := ParseDatabasePeers(p["peers"])
	if err != nil {
		return nil, bad("peers", err.Error(), `one "NODE CONNINFO" per line`)
	}
	r.peers = peers
	if v := p["max_lag_on_failover"]; v != "" {
		if r.maxLag, err = parseBytes(v); err != nil {
			return nil, bad("max_lag_on_failover", err.Error(), `bytes, e.g. "1048576" or "16MB"; "0" for no limit`)
		}
	}
	if v := p["synchronous"]; v != "" {
		if r.sync, err = strconv.ParseBool(v); err != nil {
			return nil, bad("synchronous", fmt.Sprintf("%q is not a boolean", v), `"true" or "false"`)
		}
	}
	if _, err := pg.ParseConnInfo(r.in.ConnInfo); err != nil {
		return nil, bad("conninfo", err.Error(), "a libpq connection string")
	}
	return r, nil
}

// track reads the peers until the process ends, remembering the last
// master seen and its WAL position: the base of the lag check when this
// node promotes after that master is gone.
func (r *databaseResource) track() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for _, ps := range pg.PollPeers(ctx, r.peers) {
			if ps.Err == nil && ps.Status.Role == pg.RoleMaster {
				r.mu.Lock()
				r.lastMaster, r.masterLSN, r.masterTL = ps.Peer.Node, ps.Status.CurrentLSN, ps.Status.Timeline
				r.mu.Unlock()
			}
		}
		cancel()
		time.Sleep(dbTrackInterval)
	}
}

// startTracking begins reading the peers (once per resource).
func (r *databaseResource) startTracking() {
	r.tracker.Do(func() {
		if len(r.peers) > 0 {
			go r.track()
		}
	})
}

// syncValue is the synchronous_standby_names this node sets as master.
func (r *databaseResource) syncValue() string {
	if !r.sync {
		return ""
	}
	var names []string
	for _, p := range r.peers {
		if !p.Geo {
			names = append(names, p.Node)
		}
	}
	return pg.SyncNames(names)
}

func (r *databaseResource) start(ctx context.Context) error {
	r.startTracking()
	st, err := r.in.Status(ctx)
	if err == nil && st.Role == pg.RoleMaster {
		return r.in.SetSynchronousStandbys(ctx, r.syncValue())
	}
	polled := pg.PollPeers(ctx, r.peers)
	req := pg.PromoteRequest{MaxLagBytes: r.maxLag, Wait: 30 * time.Second,
		// The engine starts the group only once the old holder is fenced
		// or, by the majority rule and the takeover delay, has stopped
		// its group, this resource (its PostgreSQL) included. A master
		// that still answers is refused below all the same.
		OldMasterGone: true}
	for _, ps := range polled {
		if ps.Err != nil {
			continue
		}
		if ps.Status.Role == pg.RoleMaster {
			return fmt.Errorf("not promoting %s: %s still runs as master (timeline %d, %s); stop or fence it first",
				r.in.Node, ps.Peer.Node, ps.Status.Timeline, ps.Status.CurrentLSN)
		}
		req.Peers = append(req.Peers, ps.Status.Position(ps.Peer.Node))
	}
	r.mu.Lock()
	req.LastMasterLSN = r.masterLSN
	r.mu.Unlock()
	if err == nil && r.sync {
		// Before the promotion, so that no commit on the new master
		// returns before a standby has it.
		_ = r.in.SetSynchronousStandbys(ctx, r.syncValue())
	}
	if _, err := r.in.Promote(ctx, req); err != nil {
		return fmt.Errorf("%w%s", err, hintOf(err))
	}
	return r.in.SetSynchronousStandbys(ctx, r.syncValue())
}

// hintOf is a refusal's hint as a sentence to append to its message.
func hintOf(err error) string {
	if pg.RefusalReason(err) == pg.ReasonLagTooHigh {
		return "; to promote anyway: promote NODE --force (the difference is lost)"
	}
	return ""
}

func (r *databaseResource) stop(ctx context.Context) error {
	up, err := r.in.Running(ctx)
	if err != nil || !up {
		return err
	}
	st, err := r.in.Status(ctx)
	if err == nil && st.Role == pg.RoleStandby {
		return nil // not the master: nothing of the group runs here
	}
	return r.in.Stop(ctx)
}

func (r *databaseResource) monitor(ctx context.Context) Status {
	r.startTracking()
	st, err := r.in.Status(ctx)
	switch {
	case err != nil:
		return Status{State: StateStopped, Detail: "not running"}
	case st.Role == pg.RoleMaster:
		return Status{State: StateRunning, Detail: fmt.Sprintf("master on timeline %d at %s", st.Timeline, st.CurrentLSN)}
	}
	return Status{State: StateStopped, Detail: "standby"}
}
