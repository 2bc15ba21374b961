package resource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// IsWarm reports whether r is a warm resource: built by New from a Spec
// with Warm set, or any resource with a Warm() bool method that says so.
func IsWarm(r Resource) bool {
	if s, ok := SpecOf(r); ok {
		return s.Warm
	}
	if w, ok := r.(interface{ Warm() bool }); ok {
		return w.Warm()
	}
	return false
}

// Warm returns the names of g's warm resources, in start order.
func (g *Group) Warm() []string {
	var out []string
	for _, r := range g.res {
		if g.warm[r.Name()] {
			out = append(out, r.Name())
		}
	}
	return out
}

// warmStarted reports whether name is a warm resource already started
// here (by StartWarm or an earlier start of the group).
func (g *Group) warmStarted(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.warm[name] && g.rstate[name] == ResStarted
}

// WarmPending reports whether a warm resource is not started here and may
// be: StartWarm has something to do. A resource past its migration
// threshold waits for a cleanup.
func (g *Group) WarmPending() bool {
	for _, n := range g.Warm() {
		if _, migrate := g.failState(n); migrate {
			continue
		}
		g.mu.Lock()
		rs := g.rstate[n]
		g.mu.Unlock()
		if rs != ResStarted {
			return true
		}
	}
	return false
}

// WarmRunning reports whether a warm resource is (believed) running or
// being started here.
func (g *Group) WarmRunning() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for n, w := range g.warm {
		if w && g.rstate[n] != ResStopped {
			return true
		}
	}
	return false
}

// StartWarm starts, in order, the warm resources that are not started
// here, whether or not the group runs here: on a standby they wait,
// listening, for the address that a takeover adds. A start that fails is
// counted as a failure of the resource (not as a start failure of the
// group, which would ban the node) and is tried again by the next call
// until the migration threshold; the error says which failed.
func (g *Group) StartWarm(ctx context.Context) error {
	g.op.Lock()
	defer g.op.Unlock()
	var errs []error
	for _, r := range g.res {
		n := r.Name()
		if !g.warm[n] || g.warmStarted(n) {
			continue
		}
		if count, migrate := g.failState(n); migrate {
			errs = append(errs, fmt.Errorf("warm resource %q failed %s here (threshold %d): %w; run cleanup %s", n, countWord(count), g.cfg.MigrationThreshold, ErrMigrationThreshold, n))
			continue
		}
		g.setRes(n, ResStarting)
		if err := r.Start(ctx); err != nil {
			g.setRes(n, ResFailed)
			g.RecordFailure(n, "start (warm)", err.Error())
			errs = append(errs, err)
			continue
		}
		g.setRes(n, ResStarted)
	}
	return errors.Join(errs...)
}

// StopWarm stops the warm resources, in reverse order, when the group is
// not started here: on a node that may no longer hold the group (standby,
// the cluster stopped). A warm resource of a started group is part of
// it, and Stop of the group leaves it running.
func (g *Group) StopWarm(ctx context.Context) error {
	g.op.Lock()
	defer g.op.Unlock()
	g.mu.Lock()
	state := g.state
	g.mu.Unlock()
	if state == GroupStarted || state == GroupStarting {
		return fmt.Errorf("group %q runs here: its warm resources stop with the whole group only", g.name)
	}
	var errs []error
	for i := len(g.res) - 1; i >= 0; i-- {
		r := g.res[i]
		if !g.warm[r.Name()] {
			continue
		}
		g.setRes(r.Name(), ResStopping)
		if err := r.Stop(ctx); err != nil {
			g.setRes(r.Name(), ResFailed)
			g.RecordFailure(r.Name(), "stop (warm)", err.Error())
			errs = append(errs, err)
			continue
		}
		g.setRes(r.Name(), ResStopped)
	}
	return errors.Join(errs...)
}

// RestartWarm restarts warm resource name alone, on a node where the
// group is not started: a warm standby that died is started again where
// it was, and the group does not move. It refuses, wrapping
// ErrMigrationThreshold, when the resource has failed too often here.
func (g *Group) RestartWarm(ctx context.Context, name string) error {
	g.op.Lock()
	defer g.op.Unlock()
	idx := g.index(name)
	if idx < 0 {
		return g.unknown(name)
	}
	if !g.warm[name] {
		return fmt.Errorf("group %q: resource %q is not warm: restart it with the group", g.name, name)
	}
	if n, migrate := g.failState(name); migrate {
		return fmt.Errorf("group %q: warm resource %q failed %s on this node (threshold %d): %w; run cleanup %s to allow restarts here",
			g.name, name, countWord(n), g.cfg.MigrationThreshold, ErrMigrationThreshold, name)
	}
	r := g.res[idx]
	if err := g.stopOne(ctx, r); err != nil {
		return err
	}
	g.setRes(name, ResStarting)
	if err := r.Start(ctx); err != nil {
		g.setRes(name, ResFailed)
		g.RecordFailure(name, "start (warm)", err.Error())
		return err
	}
	g.setRes(name, ResStarted)
	return nil
}

// NonlocalBind lets services in this network namespace bind addresses
// that are not on any of its interfaces yet (net.ipv4.ip_nonlocal_bind,
// and net.ipv6.ip_nonlocal_bind for an IPv6 address), so that a warm PBX
// listens on the virtual IP before a takeover adds it. It returns the
// settings it changed ("" when both were set already). The setting
// belongs to the namespace the calling thread is in.
func NonlocalBind(ipv4, ipv6 bool) (changed []string, err error) {
	for _, s := range []struct {
		want bool
		key  string
	}{{ipv4, "net.ipv4.ip_nonlocal_bind"}, {ipv6, "net.ipv6.ip_nonlocal_bind"}} {
		if !s.want {
			continue
		}
		did, err := setSysctl(s.key, "1")
		if err != nil {
			return changed, fmt.Errorf("setting %s = 1 for the warm resources (they listen on the virtual IP before it arrives): %w", s.key, err)
		}
		if did {
			changed = append(changed, s.key)
		}
	}
	return changed, nil
}

// setSysctl writes value to key under /proc/sys unless it has it
// already, and reports whether it wrote.
func setSysctl(key, value string) (bool, error) {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	b, err := os.ReadFile(p)
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(b)) == value {
		return false, nil
	}
	if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
		return false, err
	}
	return true, nil
}
