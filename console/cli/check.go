package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Monitoring-plugin exit codes (Nagios, Icinga, Naemon, Sensu): `hatui
// --exec check` uses these instead of the exit codes of the other verbs,
// so a monitoring system can run it over SSH as it is.
const (
	CheckOK       = 0
	CheckWarning  = 1
	CheckCritical = 2
	CheckUnknown  = 3
)

var checkWords = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// CheckResult is the verdict of a check: its exit code, the reasons in
// order of weight, and the performance data.
type CheckResult struct {
	Code     int
	Critical []string
	Warning  []string
	Perf     []string
}

// Check judges a snapshot the way a NOC would at a glance. Critical: a
// pending geo failover (its dead man's timer runs), an UNCLEAN node, a
// failed fence, a service group that should serve and does not. Warning:
// a node not online, a risk shown, a failed action, a database standby
// that does not stream or a database that does not answer, a switch its
// driver cannot reach.
func Check(s *protocol.Snapshot) CheckResult {
	var r CheckResult
	crit := func(f string, a ...any) { r.Critical = append(r.Critical, fmt.Sprintf(f, a...)) }
	warn := func(f string, a ...any) { r.Warning = append(r.Warning, fmt.Sprintf(f, a...)) }

	serving := ""
	if g := s.Geo; g != nil {
		serving = g.Ticket.Holder
		if p := g.Pending; p != nil {
			crit("geo failover %s→%s pending, %s left on the dead man's timer", p.From, p.To, p.Expires.Sub(s.Time).Round(time.Second))
		}
	}
	online, total, started, groups, risks := 0, 0, 0, 0, 0
	var maxLag int64
	for _, site := range s.Sites {
		for _, c := range site.Clusters {
			for _, n := range c.Nodes {
				total++
				switch n.State {
				case protocol.StateOnline:
					online++
				case protocol.StateUnclean:
					crit("%s UNCLEAN: failed while it may hold resources, not fenced", n.Name)
				default:
					warn("%s %s", n.Name, n.State)
				}
			}
			for _, risk := range c.Quorum.Risks {
				risks++
				warn("cluster %s: %s", c.Name, risk)
			}
			for _, g := range c.Groups {
				for _, r := range g.Resources {
					if r.Warm && r.Node != g.Active && r.State == "failed" {
						warn("warm standby %s of group %s failed on %s", r.Name, g.Name, r.Node)
					}
				}
				groups++
				if g.State == "started" {
					started++
					continue
				}
				shouldServe := serving == "" || serving == site.Name
				switch {
				case g.State == "failed":
					crit("group %s failed%s", g.Name, reason(g.Reason))
				case shouldServe && g.State != "starting":
					crit("group %s %s at serving site %s%s", g.Name, g.State, site.Name, reason(g.Reason))
				}
			}
			for _, f := range c.Failed {
				if f.Op == "fence" {
					crit("fencing %s failed: %s", f.Node, f.Reason)
				} else {
					warn("%s %s failed on %s: %s", f.Resource, f.Op, f.Node, f.Reason)
				}
			}
			for _, d := range c.Databases {
				maxLag = max(maxLag, d.LagBytes)
				if (d.Role == "standby" || d.Role == "geo-standby") && !d.Streaming {
					warn("database %s %s not streaming", d.Node, d.Role)
				}
				if !d.Healthy && d.Health != "" && d.Role != "down" {
					warn("database %s unhealthy: %s", d.Node, d.Health)
				}
			}
			for _, sw := range c.Switches {
				if !sw.Reachable {
					warn("switch %s unreachable", sw.Name)
				}
			}
		}
	}
	switch {
	case len(r.Critical) > 0:
		r.Code = CheckCritical
	case len(r.Warning) > 0:
		r.Code = CheckWarning
	}
	pending := 0.0
	if s.Geo != nil && s.Geo.Pending != nil {
		pending = max(0, s.Geo.Pending.Expires.Sub(s.Time).Seconds())
	}
	r.Perf = []string{
		fmt.Sprintf("nodes_online=%d;;;0;%d", online, total),
		fmt.Sprintf("groups_started=%d;;;0;%d", started, groups),
		fmt.Sprintf("risks=%d;;;0", risks),
		fmt.Sprintf("db_max_lag=%dB;;;0", maxLag),
		fmt.Sprintf("geo_pending=%.0fs;;;0", pending),
	}
	return r
}

func reason(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

// Line renders the result as a monitoring plugin's one status line:
// "HATUI CRITICAL - first reason; 2 more | perfdata".
func (r CheckResult) Line() string {
	reasons := slices.Concat(r.Critical, r.Warning)
	text := "deployment healthy"
	if len(reasons) > 0 {
		text = reasons[0]
		if len(reasons) > 1 {
			text += fmt.Sprintf("; %d more: %s", len(reasons)-1, strings.Join(reasons[1:], "; "))
		}
	}
	// The plugin format reserves '|' for perfdata.
	text = strings.ReplaceAll(text, "|", "/")
	return fmt.Sprintf("HATUI %s - %s | %s", checkWords[r.Code], text, strings.Join(r.Perf, " "))
}

// CheckUnreachable prints the UNKNOWN line for an agent that could not be
// asked and returns its exit code.
func CheckUnreachable(w io.Writer, err error) int {
	msg := strings.ReplaceAll(protocol.AsError(err).Message, "|", "/")
	fmt.Fprintf(w, "HATUI UNKNOWN - no answer from the agent: %s\n", msg)
	return CheckUnknown
}
