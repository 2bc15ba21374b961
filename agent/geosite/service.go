package geosite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/geo"
	"github.com/hatui/hatui/protocol"
)

// service builds this site's geo.Service from the configuration.
func (f *Feature) service(c *config.Config) (geo.Service, error) {
	switch f.cfg.Service {
	case config.GeoServiceCluster:
		return &clusterService{h: f.h, cluster: c.Cluster}, nil
	case config.GeoServiceExec:
		env := []string{"HATUI_GEO_SITE=" + c.Site, "HATUI_GEO_NODE=" + c.Node, "HATUI_GEO_DEPLOYMENT=" + c.Deployment}
		return &ExecService{Start: f.cfg.StartCommand, Stop: f.cfg.StopCommand, Env: env}, nil
	}
	return nil, protocol.Errorf(protocol.CodeUsage, `set geo.service to "cluster" or "exec"`, "geo.service %q is not a service", f.cfg.Service)
}

// clusterService drives the local failover's service group: the geo
// role's service is the whole local cluster.
type clusterService struct {
	h       agent.Host
	cluster string
}

func (s *clusterService) StartServing(ctx context.Context) error {
	return s.do(ctx, "cluster activate")
}

// StopServing takes the cluster out of service with its group stopped:
// "cluster disable" would leave the group running, unmanaged.
func (s *clusterService) StopServing(ctx context.Context) error {
	return s.do(ctx, "cluster stop")
}

func (s *clusterService) do(ctx context.Context, verb string) error {
	res := s.h.Do(ctx, protocol.Action{Verb: verb, Args: []string{s.cluster}}, "geo", nil)
	if !res.OK {
		if res.Error != nil {
			return fmt.Errorf("%s %s: %w", verb, s.cluster, res.Error)
		}
		return fmt.Errorf("%s %s: %s", verb, s.cluster, res.Message)
	}
	return nil
}

// ExecService starts and stops a site's service with two commands. Both
// must be idempotent, and Stop must return only once the service is
// stopped. The geo manager bounds each call with its service timeout.
type ExecService struct {
	Start, Stop []string
	// Env is added to the agent's environment, with HATUI_GEO_ACTION set
	// to "start" or "stop".
	Env []string
}

// StartServing implements geo.Service.
func (s *ExecService) StartServing(ctx context.Context) error { return s.run(ctx, "start", s.Start) }

// StopServing implements geo.Service.
func (s *ExecService) StopServing(ctx context.Context) error { return s.run(ctx, "stop", s.Stop) }

// maxOutput bounds the output quoted in an error.
const maxOutput = 2000

func (s *ExecService) run(ctx context.Context, action string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("geo %s_command is not set", action)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), s.Env...), "HATUI_GEO_ACTION="+action)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that a timeout ends what it started too;
	// and a bounded wait for output, because a command that starts a
	// daemon may leave it holding the pipe.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // it exited 0; a daemon it started keeps the pipe
	}
	if err == nil {
		return nil
	}
	text := strings.TrimSpace(out.String())
	if len(text) > maxOutput {
		text = text[:maxOutput] + "…"
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w after %s (%v)", ctx.Err(), time.Since(start).Round(time.Millisecond), err)
	}
	if text == "" {
		text = "no output"
	}
	return fmt.Errorf("geo %s_command %q: %w: %s", action, argv, err, text)
}

// driving says whether this agent drives its site's service: the node
// holding the site cluster's service group, else the first alive,
// non-standby geo voter of the site by name. Only geo voters of the site
// are candidates: another node of the site runs no geo manager.
func (f *Feature) driving() bool {
	c := f.h.Config()
	var mine []string
	for _, v := range f.cfg.Voters {
		if v.Site == c.Site && !v.Arbitrator {
			mine = append(mine, v.Node)
		}
	}
	if len(mine) <= 1 {
		return true
	}
	snap := f.h.Deployment()
	type info struct{ alive, standby bool }
	seen := map[string]info{}
	for _, s := range snap.Sites {
		if s.Name != c.Site {
			continue
		}
		for _, cl := range s.Clusters {
			if cl.Name == c.Cluster {
				for _, g := range cl.Groups {
					if g.Active != "" && slices.Contains(mine, g.Active) {
						return g.Active == c.Node
					}
				}
			}
			for _, n := range cl.Nodes {
				seen[n.Name] = info{alive: n.Member == protocol.MemberAlive, standby: n.Standby}
			}
		}
	}
	// This agent is alive by definition, whatever gossip says yet.
	self := seen[c.Node]
	self.alive = true
	seen[c.Node] = self
	slices.Sort(mine)
	for _, n := range mine {
		if i := seen[n]; i.alive && !i.standby {
			return n == c.Node
		}
	}
	for _, n := range mine {
		if seen[n].alive {
			return n == c.Node
		}
	}
	return false
}
