// Package cluster is the agent feature of local failover: from the node's
// [failover] configuration it builds the service group and its health
// checks, the heartbeat paths (the agent's Serf pool, an optional serial
// cable and dedicated interface) and fencing (the power switches whose
// outlets feed the cluster's nodes), and runs the agent/failover engine.
// The engine's decision log travels over the peer channel, so it has no
// listener of its own.
//
// Every agent has the feature, so that any agent can route the verbs:
// standby, online and maintenance of a failover node (taken over from the
// agent's built-in flags, because they move groups now), cleanup,
// switchover, fence, "cluster activate", "cluster disable" (stop managing;
// the group keeps running) and "cluster stop" (out of service, the group
// stopped: what the geo manager asks of a site that no longer serves). The node
// that carries a verb out is a voter of the cluster concerned; fence is
// never carried out by the node to be fenced.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/alert"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/failover"
	"github.com/hatui/hatui/agent/health"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/agent/resource"
	"github.com/hatui/hatui/agent/watchdog"
	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/switchdrv"
	_ "github.com/hatui/hatui/switchdrv/drivers" // the power switch drivers fencing may use
)

// ChannelType is the peer channel type of the decision log.
const ChannelType = "hatui-failover-raft@hatui"

// Feature is the local failover feature of one agent.
type Feature struct {
	h   agent.Host
	cfg *config.Config
	eng *failover.Engine // nil when this node runs no failover
	wd  *watchdog.Device // nil without [failover] watchdog

	done chan struct{}
	wg   sync.WaitGroup
}

// New builds the feature. A node without [failover] enabled gets a
// feature that only routes the verbs to nodes that run it.
func New(h agent.Host) (agent.Feature, error) {
	c := h.Config()
	f := &Feature{h: h, cfg: c, done: make(chan struct{})}
	if !c.Failover.Enabled {
		return f, nil
	}
	eng, wd, err := open(h, c)
	if err != nil {
		return nil, fmt.Errorf("local failover of %s: %w", c.Failover.Group, err)
	}
	f.eng, f.wd = eng, wd
	f.wg.Add(1)
	go f.follow()
	return f, nil
}

// Check validates the node's [failover] section as the agent would at
// start, without starting anything: the group's resources and checks
// (binaries present, timings that can work), the engine's timing rules,
// the watchdog (inspected without being armed for good) and what stops
// the group if this node's agent dies alone. It returns what an operator
// should know before starting: the stop budget and the takeover delay
// that follows from it, the watchdog found, the fencing, the risks.
// ha-agent check-config prints it.
func Check(c *config.Config) (string, error) {
	if !c.Failover.Enabled {
		return "", nil
	}
	fc := c.Failover
	cfg := engineConfig(c)
	var group *resource.Group
	if !fc.Witness(c.Node) {
		spec, err := groupSpec(fc)
		fillDatabase(&spec, c)
		if err != nil {
			return "", err
		}
		g, m, err := failover.BuildGroup(spec)
		if err != nil {
			return "", err
		}
		if m != nil {
			m.Close()
		}
		group = g
	}
	cfg = cfg.WithDefaults(failover.StopBudget(group))
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	if fc.Witness(c.Node) {
		fmt.Fprintf(&b, "failover: %s is the witness of cluster %s (group %s); it holds nothing\n", c.Node, c.Cluster, fc.Group)
		return b.String(), nil
	}
	fences := fencedVoters(c, cfg)
	fmt.Fprintf(&b, "failover: %s can hold group %s of cluster %s (%s)\n", c.Node, fc.Group, c.Cluster, decides(cfg, fences))
	t := cfg.Timing
	fmt.Fprintf(&b, "  stop budget %v (%s)\n", t.StopBudget, stopTimeouts(group, fc))
	if warm := group.Warm(); len(warm) > 0 {
		fmt.Fprintf(&b, "  warm: %s run on every node that may hold %s and listen before the address arrives (the agent sets net.ipv4.ip_nonlocal_bind); a takeover moves only the rest\n",
			strings.Join(warm, ", "), fc.Group)
	}
	fmt.Fprintf(&b, "  takeover delay %v: without a verified fence, a peer starts %s that long after its last contact with the holder (keepalive %v, deadtime %v, stop deadline %v)\n",
		t.TakeoverDelay, fc.Group, t.Keepalive, t.DeadTime, t.StopDeadline)
	if fc.Watchdog != "" {
		timeout, _, err := watchdogTimeout(fc, cfg)
		if err != nil {
			return "", err
		}
		r, err := watchdog.Inspect(fc.Watchdog, timeout)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "  %s; the agent arms it with %v\n", r, timeout)
	}
	if len(fences) > 0 {
		fmt.Fprintf(&b, "  fencing: %s can power off %s\n", c.Node, strings.Join(fences, ", "))
	}
	if err := cfg.CrashGuard(fc.Watchdog != "", fences); err != nil {
		return "", err
	}
	if fc.Watchdog == "" && len(fences) == 0 {
		fmt.Fprintf(&b, "  RISK: no watchdog and no fencing: if %s's agent dies alone, %s keeps running here while another node takes it over (allow_agent_crash_risk is set)\n", c.Node, fc.Group)
	}
	return b.String(), nil
}

// decides says how the cluster decides a takeover.
func decides(cfg failover.Config, fences []string) string {
	switch {
	case len(cfg.Voters) >= 3:
		return fmt.Sprintf("%d voters: a majority decides a takeover", len(cfg.Voters))
	case len(fences) > 0:
		return "two nodes: the survivor fences the other before it takes over"
	}
	return "two nodes without fencing or witness: allow_two_node_risk"
}

// stopTimeouts lists each resource's stop timeout, defaults filled in.
func stopTimeouts(g *resource.Group, fc config.Failover) string {
	if fc.Timing.StopBudget.Duration > 0 {
		return "set by stop_budget"
	}
	var parts []string
	for _, r := range g.Resources() {
		if s, ok := resource.SpecOf(r); ok && !s.Warm {
			parts = append(parts, fmt.Sprintf("%s %v", s.Name, s.StopTimeout))
		}
	}
	return strings.Join(parts, " + ")
}

// fencedVoters lists the voters this node's [[switch]] power switches can
// power off, from the configuration alone (no driver is opened).
func fencedVoters(c *config.Config, cfg failover.Config) []string {
	var out []string
	for _, sw := range c.Switches {
		if sw.Kind != "power" {
			continue
		}
		for _, node := range sw.Outlets {
			if node != c.Node && !slices.Contains(out, node) && slices.ContainsFunc(cfg.Voters, func(v failover.Voter) bool { return v.Name == node && !v.Witness }) {
				out = append(out, node)
			}
		}
	}
	slices.Sort(out)
	return out
}

// open builds everything the engine needs and opens it. Whatever it
// built is closed again when it fails.
func open(h agent.Host, c *config.Config) (eng *failover.Engine, wd *watchdog.Device, err error) {
	fc := c.Failover
	cfg := engineConfig(c)
	var closers []func() error
	defer func() {
		if err != nil {
			for _, cl := range slices.Backward(closers) {
				cl()
			}
		}
	}()
	// The engine's events reach the agent's log through Record.
	deps := failover.Deps{}
	if !fc.Witness(c.Node) {
		spec, err := groupSpec(fc)
		fillDatabase(&spec, c)
		if err != nil {
			return nil, nil, err
		}
		g, m, err := failover.BuildGroup(spec)
		if err != nil {
			return nil, nil, err
		}
		deps.Group, deps.Monitor = g, m
		if m != nil {
			closers = append(closers, func() error { m.Close(); return nil })
		}
		if warm := g.Warm(); len(warm) > 0 {
			v4, v6 := vipFamilies(spec)
			changed, err := resource.NonlocalBind(v4, v6)
			if err != nil {
				return nil, nil, err
			}
			h.Logger().Info("warm resources run on every node that may hold the group; only the address moves",
				"warm", strings.Join(warm, ","), "set", strings.Join(changed, ","))
		}
	}
	cfg = cfg.WithDefaults(failover.StopBudget(deps.Group))
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	keys := h.Keys()
	if len(keys) == 0 {
		return nil, nil, errors.New("local failover needs the gossip key: its decision log and heartbeats are authenticated with it")
	}
	deps.Key = keys[0]
	var peers []string
	for _, v := range cfg.Voters {
		if v.Name != c.Node {
			peers = append(peers, v.Name)
		}
	}
	sp, err := failover.NewSerfPath(h.Pool(), peers, cfg.Timing.Keepalive/2)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, sp.Close)
	deps.Paths = append(deps.Paths, sp)
	hb := failover.HeartbeatConfig{Cluster: c.Cluster, Node: c.Node, Key: deps.Key, Interval: cfg.Timing.Keepalive}
	for i, p := range fc.Paths {
		phb := hb
		if p.Interval.Duration > 0 {
			phb.Interval = p.Interval.Duration
		}
		var path failover.Path
		switch p.Kind {
		case "serial":
			path, err = failover.NewSerialPath(failover.SerialConfig{HeartbeatConfig: phb, Device: p.Device, Baud: p.Baud, Peer: p.Peer})
		case "nic":
			path, err = failover.NewNICPath(failover.NICConfig{HeartbeatConfig: phb, Local: p.Local, Peers: p.Peers})
		}
		if err != nil {
			return nil, nil, fmt.Errorf("failover.path[%d]: %w", i, err)
		}
		closers = append(closers, path.Close)
		deps.Paths = append(deps.Paths, path)
	}
	if fencer, err := powerFencer(c, cfg); err != nil {
		return nil, nil, err
	} else if len(fencer) > 0 {
		deps.Fencer = fencer
	}
	stream, err := h.Stream(ChannelType)
	if err != nil {
		return nil, nil, err
	}
	if fc.Watchdog != "" {
		if wd, err = openWatchdog(h, fc, cfg); err != nil {
			stream.Close()
			return nil, nil, err
		}
		deps.Kick = wd.Kick
	} else if deps.Fencer == nil && !fc.Witness(c.Node) && fc.AllowAgentCrashRisk {
		h.Logger().Warn("no watchdog and no fencing: if this agent dies alone, the group keeps running here while another node takes it over (allow_agent_crash_risk is set)",
			"node", c.Node, "group", fc.Group)
	}
	deps.Stream = stream
	deps.OnEvent = func(e failover.Event) {
		h.Record(e.Event)
		if alerted[e.Type] {
			h.Audit("failover "+string(e.Type)+" "+e.Group, "failover", "ok", e.Message)
			// Each engine reports what it did itself: one alert per event.
			h.Alert(alert.Alert{Time: e.Time, Site: c.Site, Node: c.Node, Kind: "failover-" + string(e.Type),
				Severity: string(e.Severity), Subject: fmt.Sprintf("%s: %s", c.Cluster, e.Message),
				Message: fmt.Sprintf("Cluster %s, group %s (epoch %d), on %s:\n%s\n\nSee hatui for the cluster's state.", c.Cluster, e.Group, e.Epoch, c.Node, e.Message)})
		}
	}
	eng, err = failover.Open(cfg, deps)
	if err != nil {
		stream.Close()
		if wd != nil {
			wd.Close(true) // nothing ran under it
		}
		return nil, nil, err
	}
	return eng, wd, nil
}

// openWatchdog arms the watchdog with a timeout that resets this node
// before a peer may start the group: a peer takes over no sooner than the
// takeover delay after its last contact with this node, and the engine
// feeds the watchdog several times per keepalive.
//
// A missing device is loaded (modprobe softdog) first, and the agent's log
// says what was armed: a device with its driver and timeout, or a file
// standing in for one, which resets nothing.
func openWatchdog(h agent.Host, fc config.Failover, cfg failover.Config) (*watchdog.Device, error) {
	timeout, limit, err := watchdogTimeout(fc, cfg)
	if err != nil {
		return nil, err
	}
	did, err := watchdog.Load(fc.Watchdog)
	if err != nil {
		return nil, err
	}
	wd, err := watchdog.Open(fc.Watchdog, timeout)
	if err != nil {
		return nil, err
	}
	if wd.Timeout() > limit {
		wd.Close(true)
		return nil, fmt.Errorf("watchdog %s: its timeout is %v, longer than the %v a peer waits", fc.Watchdog, wd.Timeout(), limit)
	}
	r := wd.Report()
	if did != "" {
		r.Note = did + "; " + r.Note
	}
	if r.Kind == watchdog.KindStandIn {
		h.Logger().Warn(r.String(), "takeover_delay", cfg.Timing.TakeoverDelay)
	} else {
		h.Logger().Info(r.String(), "takeover_delay", cfg.Timing.TakeoverDelay)
	}
	return wd, nil
}

// watchdogTimeout is the configured watchdog timeout, or the default,
// checked against the longest that still resets the node in time.
func watchdogTimeout(fc config.Failover, cfg failover.Config) (timeout, limit time.Duration, err error) {
	limit = cfg.Timing.TakeoverDelay - 2*cfg.Timing.Keepalive
	timeout = fc.WatchdogTimeout.Duration
	if timeout == 0 {
		timeout = limit.Truncate(time.Second)
	}
	if timeout < time.Second || timeout > limit {
		return 0, 0, &failover.ConfigError{Key: "watchdog_timeout",
			Problem: fmt.Sprintf("a watchdog timeout of %v does not reset the node before the takeover delay (%v) less two keepalives", timeout, cfg.Timing.TakeoverDelay),
			Want:    fmt.Sprintf("whole seconds from 1s to %v, or a longer takeover delay", limit.Truncate(time.Second))}
	}
	return timeout, limit, nil
}

// engineConfig is the engine's configuration from the node's.
func engineConfig(c *config.Config) failover.Config {
	fc := c.Failover
	cfg := failover.Config{
		Cluster:             c.Cluster,
		Node:                c.Node,
		Group:               fc.Group,
		AllowTwoNodeRisk:    fc.AllowTwoNodeRisk,
		AllowAgentCrashRisk: fc.AllowAgentCrashRisk,
		// Where the geo manager drives the cluster, it alone activates it:
		// a backup site must not start serving because its cluster formed.
		Activate:  fc.Activate && !(c.Geo.Enabled && c.Geo.Service == config.GeoServiceCluster),
		GeoDriven: c.Geo.Enabled && c.Geo.Service == config.GeoServiceCluster,
		DataDir:   filepath.Join(c.StateDir, "failover"),
		Timing: failover.Timing{
			Keepalive: fc.Timing.Keepalive.Duration, WarnTime: fc.Timing.WarnTime.Duration,
			DeadTime: fc.Timing.DeadTime.Duration, InitDead: fc.Timing.InitDead.Duration,
			StopDeadline: fc.Timing.StopDeadline.Duration, StopBudget: fc.Timing.StopBudget.Duration,
			TakeoverDelay: fc.Timing.TakeoverDelay.Duration, FenceRetry: fc.Timing.FenceRetry.Duration,
			MonitorInterval: fc.Timing.MonitorInterval.Duration,
		},
		Raft: failover.RaftTiming{
			HeartbeatTimeout: fc.Raft.HeartbeatTimeout.Duration, ElectionTimeout: fc.Raft.ElectionTimeout.Duration,
			LeaderLeaseTimeout: fc.Raft.LeaderLeaseTimeout.Duration, CommitTimeout: fc.Raft.CommitTimeout.Duration,
			TransportTimeout: fc.Raft.TransportTimeout.Duration,
		},
	}
	for _, v := range fc.Voters {
		cfg.Voters = append(cfg.Voters, failover.Voter{Name: v.Name, Addr: v.Addr, Witness: v.Witness})
	}
	return cfg
}

// alerted are the engine's events that page the operator: a takeover,
// a node that stopped its service for lack of a majority, fencing, a
// group that could not start or stop, a group found running when the
// agent started, and a start held back because another host still
// answers for the group.
var alerted = map[failover.EventType]bool{
	failover.EvAcquired: true, failover.EvSelfFence: true, failover.EvFenced: true,
	failover.EvFenceFailed: true, failover.EvStartFailed: true, failover.EvStopFailed: true,
	failover.EvEscalated: true, failover.EvStaleFound: true, failover.EvInUse: true,
}

// groupSpec turns the configuration into the failover package's spec.
// The failover package checks it (BuildGroup), naming the resource or
// check at fault.
func groupSpec(fc config.Failover) (failover.GroupSpec, error) {
	spec := failover.GroupSpec{
		Name:               fc.Group,
		MigrationThreshold: fc.MigrationThreshold,
		FailureTimeout:     fc.FailureTimeout.Duration,
		Policy:             health.PolicyConfig{MaxRestarts: fc.MaxRestarts, RestartWindow: fc.RestartWindow.Duration},
	}
	for _, r := range fc.Resources {
		spec.Resources = append(spec.Resources, resource.Spec{
			Name: r.Name, Type: r.Type, Params: r.Params,
			StartTimeout: r.StartTimeout.Duration, StopTimeout: r.StopTimeout.Duration, MonitorTimeout: r.MonitorTimeout.Duration,
			Warm: r.Warm,
		})
	}
	for _, ck := range fc.Checks {
		s := health.DefaultSpec()
		s.Name, s.Kind, s.Resource, s.Params = ck.Name, ck.Kind, ck.Resource, ck.Params
		if ck.Class != "" {
			s.Class = health.Class(ck.Class)
		}
		if ck.OnFatal != "" {
			s.OnFatal = health.Action(ck.OnFatal)
		}
		if ck.Interval.Duration != 0 {
			s.Interval = ck.Interval.Duration
		}
		if ck.Timeout.Duration != 0 {
			s.Timeout = ck.Timeout.Duration
		}
		if ck.Rise != 0 {
			s.Rise = ck.Rise
		}
		if ck.Fall != 0 {
			s.Fall = ck.Fall
		}
		spec.Checks = append(spec.Checks, s)
	}
	return spec, nil
}

// fillDatabase gives a database resource the parameters it leaves out
// from the node's [database] section: the local instance, its peers and
// promote_max_lag_bytes as max_lag_on_failover.
func fillDatabase(spec *failover.GroupSpec, c *config.Config) {
	d := c.Database
	if !d.Enabled {
		return
	}
	var peers []pg.Peer
	for _, p := range d.Peers {
		peers = append(peers, pg.Peer{Node: p.Node, ConnInfo: p.ConnInfo, Geo: p.Geo})
	}
	for i := range spec.Resources {
		r := &spec.Resources[i]
		if r.Type != "database" {
			continue
		}
		params := map[string]string{"node": c.Node, "conninfo": d.ConnInfo, "data_dir": d.DataDir, "bin_dir": d.BinDir,
			"os_user": d.OSUser, "start_options": d.StartOptions, "peers": resource.FormatDatabasePeers(peers)}
		if d.PromoteMaxLagBytes > 0 {
			params["max_lag_on_failover"] = fmt.Sprint(d.PromoteMaxLagBytes)
		}
		for k, v := range r.Params {
			params[k] = v
		}
		for k, v := range params {
			if v == "" {
				delete(params, k)
			}
		}
		r.Params = params
	}
}

// powerFencer finds, among the node's [[switch]] power switches, the
// outlets feeding the cluster's other voters.
func powerFencer(c *config.Config, cfg failover.Config) (failover.PowerFencer, error) {
	pf := failover.PowerFencer{}
	for i := range c.Switches {
		sw := &c.Switches[i]
		if sw.Kind != "power" {
			continue
		}
		var ps switchdrv.PowerSwitch
		for outlet, node := range sw.Outlets {
			if node == c.Node || !slices.ContainsFunc(cfg.Voters, func(v failover.Voter) bool { return v.Name == node && !v.Witness }) {
				continue
			}
			if ps == nil {
				var err error
				if ps, err = switchdrv.OpenPowerSwitch(sw.Driver, sw.DriverOptions()); err != nil {
					return nil, fmt.Errorf("switch[%d] %s as a fencing device: %w", i, sw.Name, err)
				}
			}
			pf[node] = failover.Outlet{Switch: ps, Outlet: outlet}
		}
	}
	return pf, nil
}

// follow mirrors this node's replicated flags into the agent (so gossip
// and the node list show them) and wakes the watchers on every change of
// the engine's state.
func (f *Feature) follow() {
	defer f.wg.Done()
	tick := time.NewTicker(time.Second) // links and timers change without a log entry
	defer tick.Stop()
	var lastErr string
	for {
		ch := f.eng.Changed()
		for _, n := range f.eng.Status().Nodes {
			if n.Name != f.cfg.Node {
				continue
			}
			msg := ""
			if err := f.h.MirrorFlags(n.Standby, n.Maintenance, "failover"); err != nil {
				msg = err.Error()
			}
			if msg != "" && msg != lastErr {
				// Once per distinct failure, not once a second.
				f.h.Record(protocol.Event{Node: f.cfg.Node, Kind: "agent", Severity: protocol.SevWarning,
					Message: msg + " (the replicated flags stand; fix the state directory)"})
			}
			lastErr = msg
		}
		f.h.Changed()
		select {
		case <-ch:
		case <-tick.C:
		case <-f.done:
			return
		}
	}
}

// Close implements agent.Feature.
func (f *Feature) Close() error {
	close(f.done)
	f.wg.Wait()
	if f.eng == nil {
		return nil
	}
	// Disarm only when nothing runs here: an agent stopped while its
	// node holds the group must come back before a peer takes over, or
	// its node resets (the resources would otherwise run twice).
	st := f.eng.Status()
	idle := st.Group.Active != f.cfg.Node && len(st.Group.Resources) == 0
	err := f.eng.Close()
	if f.wd != nil {
		err = errors.Join(err, f.wd.Close(idle))
	}
	return err
}

// Report implements agent.Feature: the group, failed actions, quorum and
// links as this node's engine sees them.
func (f *Feature) Report(r *protocol.Snapshot) {
	if f.eng == nil || len(r.Sites) == 0 || len(r.Sites[0].Clusters) == 0 {
		return
	}
	st := f.eng.Status()
	c := &r.Sites[0].Clusters[0]
	c.Quorum = st.Quorum
	c.Groups = append(c.Groups, st.Group)
	c.Failed = append(c.Failed, st.Failed...)
	for _, en := range st.Nodes {
		i := slices.IndexFunc(c.Nodes, func(n protocol.Node) bool { return n.Name == en.Name })
		if i < 0 {
			continue
		}
		n := &c.Nodes[i]
		n.Links = append(n.Links, en.Links...)
		n.Standby, n.Maintenance = en.Standby, en.Maintenance
		if en.Role != "" {
			n.Role = en.Role
		}
		n.State = protocol.DeriveState(n.Member, n.Standby, n.Maintenance, n.Unclean)
	}
	// Peers this node's engine sees as unclean: failed on every path while
	// they may still hold the group.
	for _, en := range st.Nodes {
		if en.Unclean && en.Name != f.cfg.Node {
			c.Nodes = append(c.Nodes, protocol.Node{Name: en.Name, Cluster: c.Name, Site: c.Site, Member: en.Member, Unclean: true, State: en.State})
		}
	}
}

// Plan implements agent.Feature.
func (f *Feature) Plan(ctx context.Context, a protocol.Action, c localapi.Caller) (localapi.Job, error) {
	if f.eng == nil {
		return nil, protocol.Errorf(protocol.CodeRefused, "ask an agent of a cluster that runs local failover",
			"%s runs no local failover ([failover] is not enabled here)", f.cfg.Node)
	}
	if a.Verb == "switchover" && len(a.Args) > 0 && a.Args[0] != f.cfg.Failover.Group {
		return nil, protocol.Errorf(protocol.CodeUsage, "run 'status' to list the groups",
			"cluster %s runs group %s, not %s", f.cfg.Cluster, f.cfg.Failover.Group, a.Args[0])
	}
	if st := f.eng.Status(); !a.DryRun && !st.Activated && !st.PendingActivate &&
		(a.Verb == "cluster disable" || a.Verb == "cluster stop" && st.Group.Active == "") {
		// Idempotent, so that the geo manager can always ask for it. A
		// stop of a disabled cluster whose group still runs, unmanaged,
		// is refused by the engine: activate it first.
		word := map[string]string{"cluster disable": "disabled", "cluster stop": "stopped"}[a.Verb]
		return func(context.Context, func(protocol.Progress)) protocol.Result {
			return protocol.Result{OK: true, Message: fmt.Sprintf("cluster %s is already %s", f.cfg.Cluster, word)}
		}, nil
	}
	changed := f.eng.Changed() // before planning, so no change is missed
	job, err := f.eng.Plan(f.engineAction(a))
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeRefused && f.eng.Status().Leader != f.cfg.Node {
		// A follower may not have applied the leader's latest entry yet
		// (an "online" a moment ago): give it a heartbeat to catch up.
		select {
		case <-changed:
		case <-time.After(f.eng.Config().Raft.HeartbeatTimeout):
		case <-ctx.Done():
			return nil, err
		}
		job, err = f.eng.Plan(f.engineAction(a))
	}
	if err != nil {
		return nil, err
	}
	return localapi.Job(job), nil
}

// engineAction turns the console's form of a verb into the engine's.
func (f *Feature) engineAction(a protocol.Action) protocol.Action {
	ea := a
	switch a.Verb {
	case "cleanup": // cleanup RESOURCE [NODE] → cleanup [NODE [RESOURCE]]
		switch {
		case len(a.Args) == 2:
			ea.Args = []string{a.Args[1], a.Args[0]}
		case len(a.Args) == 1 && a.Args[0] == f.cfg.Failover.Group:
			ea.Args = nil // the whole group, on every node
		case len(a.Args) == 1:
			on := f.eng.Status().Group.Active
			if on == "" {
				on = f.cfg.Node
			}
			ea.Args = []string{on, a.Args[0]}
		}
	case "switchover": // switchover GROUP [NODE] → switchover [NODE]
		if len(a.Args) > 0 {
			ea.Args = a.Args[1:]
		}
	case "cluster activate", "cluster disable", "cluster stop": // cluster activate CLUSTER → activate
		ea.Verb = a.Verb[len("cluster "):]
		ea.Args = nil
	}
	return ea
}

// vipFamilies reports whether the group's virtual IPs include IPv4 and
// IPv6 addresses (IPv4 when it has none: a warm PBX may still bind a
// nonlocal address of its own).
func vipFamilies(spec failover.GroupSpec) (v4, v6 bool) {
	for _, r := range spec.Resources {
		if r.Type != "vip" {
			continue
		}
		if strings.Contains(r.Params["ip"], ":") {
			v6 = true
		} else {
			v4 = true
		}
	}
	return v4 || !v6, v6
}
