// Package cli runs one console verb without a terminal: `hatui --exec`.
// It prints plain text or stable JSON and turns the outcome into an exit
// code a script can act on.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hatui/hatui/console/verb"
	"github.com/hatui/hatui/protocol"
)

// Exit codes, documented in README.md.
const (
	ExitOK          = 0 // success
	ExitFailed      = 1 // the action was tried and did not succeed
	ExitRefused     = 2 // refused, or a usage error
	ExitUnreachable = 3 // no agent answered
)

// ExitCode maps an error to the exit code a script sees.
func ExitCode(err error) int {
	switch protocol.CodeOf(err) {
	case "":
		return ExitOK
	case protocol.CodeUnreachable:
		return ExitUnreachable
	case protocol.CodeFailed, protocol.CodeInternal, protocol.CodeBusy:
		return ExitFailed
	}
	return ExitRefused
}

// Runner runs verbs.
type Runner struct {
	Table *verb.Table
	JSON  bool
	// Yes is the script's confirmation of an irreversible verb (promote,
	// reseed, fence, geo confirm...), which a terminal would ask for.
	Yes    bool
	Out    io.Writer // results
	Err    io.Writer // progress and errors in text mode
	Do     func(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error)
	Status func(ctx context.Context, node string) (*protocol.Snapshot, error)
}

// errorJSON is the stable JSON shape of a failure.
type errorJSON struct {
	OK    bool            `json:"ok"`
	Error *protocol.Error `json:"error"`
}

// Run parses and runs one command line and returns the exit code.
func (r *Runner) Run(ctx context.Context, line string) int {
	cmd, err := r.Table.Parse(line)
	if err != nil {
		return r.Fail(err)
	}
	switch cmd.Verb.Name {
	case "help":
		fmt.Fprint(r.Out, r.Table.Help())
		return ExitOK
	case "status":
		node := ""
		if len(cmd.Action.Args) > 0 {
			node = cmd.Action.Args[0]
		}
		snap, err := r.Status(ctx, node)
		if err != nil {
			return r.Fail(err)
		}
		if r.JSON {
			return r.json(snap)
		}
		WriteStatus(r.Out, snap)
		return ExitOK
	}
	// An action on a node that does not exist, or a database verb for a
	// node without one, is refused before --yes is asked for: there is
	// nothing to confirm.
	if needsCheck(cmd) && r.Status != nil {
		snap, err := r.Status(ctx, "")
		if err != nil {
			return r.Fail(err)
		}
		if err := cmd.Check(snap); err != nil {
			return r.Fail(err)
		}
	}
	if cmd.Irreversible() && !r.Yes {
		return r.Fail(protocol.Errorf(protocol.CodeRefused,
			fmt.Sprintf("check the target, then run again with --yes: hatui --exec '%s' --yes", line),
			"%s cannot be undone and was not confirmed", cmd.Verb.Name))
	}
	res, err := r.Do(ctx, cmd.Action, func(p protocol.Progress) {
		if !r.JSON {
			if p.Percent >= 0 {
				fmt.Fprintf(r.Err, "%s: %s (%.0f%%)\n", p.Step, p.Message, p.Percent)
			} else {
				fmt.Fprintf(r.Err, "%s: %s\n", p.Step, p.Message)
			}
		}
	})
	if err != nil {
		if res.Error == nil {
			return r.Fail(err)
		}
	}
	if r.JSON {
		r.json(res)
		return ExitCode(err)
	}
	if err != nil {
		return r.Fail(err)
	}
	fmt.Fprintln(r.Out, res.Message)
	return ExitOK
}

// needsCheck reports whether a command names something the deployment
// view can confirm exists.
func needsCheck(cmd verb.Command) bool {
	for i := range cmd.Action.Args {
		if i >= len(cmd.Verb.Args) {
			break
		}
		switch cmd.Verb.Args[i].Kind {
		case verb.KindNode, verb.KindDBNode, verb.KindSite, verb.KindCluster:
			return true
		}
	}
	return false
}

func (r *Runner) json(v any) int {
	enc := json.NewEncoder(r.Out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(r.Err, "hatui: writing JSON:", err)
		return ExitFailed
	}
	return ExitOK
}

// Fail reports err as the command's outcome and returns its exit code.
func (r *Runner) Fail(err error) int {
	pe := protocol.AsError(err)
	if r.JSON {
		r.json(errorJSON{OK: false, Error: pe})
	} else {
		fmt.Fprintf(r.Err, "hatui: %s\n", pe.Message)
		if pe.Hint != "" {
			fmt.Fprintf(r.Err, "hint: %s\n", pe.Hint)
		}
	}
	return ExitCode(err)
}

// WriteStatus prints a snapshot as plain text in crm_mon's spirit: a
// summary, then every site, cluster and node with its state word.
func WriteStatus(w io.Writer, s *protocol.Snapshot) {
	nodes := s.Nodes()
	online := 0
	for _, n := range nodes {
		if n.Member == protocol.MemberAlive {
			online++
		}
	}
	fmt.Fprintf(w, "Deployment %s: %d nodes configured, %d online (answered by %s at %s)\n",
		s.Deployment, len(nodes), online, s.From, s.Time.Local().Format(time.TimeOnly))
	if is := s.Island; is != nil {
		// Said first: everything below about the other sites is this
		// island's last view of them.
		fmt.Fprintf(w, "ISLAND: %s reaches only %s (%d of %d geo votes); %s out of its sight: what it shows of them is its last view, and they may fail over without it\n",
			is.Node, strings.Join(is.Sites, ", "), is.Votes, is.Total, strings.Join(is.Unreached, ", "))
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	for _, site := range s.Sites {
		kind := ""
		if site.Arbitrator {
			kind = " (arbitrator)"
		}
		if s.Island != nil && slices.Contains(s.Island.Unreached, site.Name) {
			kind += " (out of sight of " + s.Island.Node + ": last known)"
		}
		fmt.Fprintf(tw, "\nSite %s%s\n", site.Name, kind)
		for _, c := range site.Clusters {
			q := "quorum"
			if !c.Quorum.HasQuorum {
				q = "NO QUORUM"
			}
			fmt.Fprintf(tw, "  Cluster %s: %d/%d voters, %s\n", c.Name, c.Quorum.Present, c.Quorum.Voters, q)
			for _, r := range c.Quorum.Risks {
				fmt.Fprintf(tw, "    RISK: %s\n", r)
			}
			ns := append([]protocol.Node(nil), c.Nodes...)
			sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
			for _, n := range ns {
				line := fmt.Sprintf("    %s\t%s\t%s", n.Name, n.State, n.Role)
				if l := links(n.Links); l != "" {
					line += "\t" + l
				}
				fmt.Fprintln(tw, line)
			}
			for _, g := range c.Groups {
				line := fmt.Sprintf("    group %s\t%s\ton %s", orDash(g.Name), g.State, orDash(g.Active))
				if g.Reason != "" {
					line += "\t— " + g.Reason
				}
				fmt.Fprintln(tw, line)
				for _, r := range g.Resources {
					line := fmt.Sprintf("      %s\t%s\t%s", r.Name, r.Type, r.State)
					if r.Node != "" {
						line += "\ton " + r.Node
					}
					if r.FailCount > 0 {
						line += fmt.Sprintf("\tfail-count %d", r.FailCount)
					}
					for _, ck := range r.Checks {
						word := "ok"
						if !ck.OK {
							word = "FAILING"
						}
						line += fmt.Sprintf("\tcheck %s (%s, %s) %s", ck.Name, ck.Kind, ck.Class, word)
					}
					fmt.Fprintln(tw, line)
				}
			}
			for _, d := range c.Databases {
				line := fmt.Sprintf("    database %s\t%s\ttimeline %d", d.Node, d.Role, d.Timeline)
				if d.Role == "standby" || d.Role == "geo-standby" {
					line += fmt.Sprintf("\tlag %d bytes", d.LagBytes)
					if !d.Streaming {
						line += "\tNOT STREAMING"
					}
				}
				if !d.Healthy && d.Health != "" {
					line += "\tUNHEALTHY: " + d.Health
				}
				fmt.Fprintln(tw, line)
			}
			for _, sw := range c.Switches {
				line := fmt.Sprintf("    switch %s\t%s\t%s", sw.Name, sw.Kind, orDash(sw.Position))
				switch {
				case sw.Stale:
					line += fmt.Sprintf("\tLAST KNOWN at %s: its driver %s does not answer", sw.AsOf.Local().Format(time.TimeOnly), sw.Node)
					if sw.Kind == "line" && sw.Watchdog == "on" && sw.Failsafe != "" && sw.WatchdogTimeout > 0 {
						line += fmt.Sprintf("; its watchdog sends the lines to %s %s after the last kick", sw.Failsafe, sw.WatchdogTimeout)
					}
				case !sw.Reachable:
					line += "\tUNREACHABLE"
				}
				if sw.Error != "" && !sw.Stale {
					line += "\t" + sw.Error
				}
				fmt.Fprintln(tw, line)
			}
			for _, f := range c.Failed {
				fmt.Fprintf(tw, "    FAILED %s %s on %s: %s\n", f.Resource, f.Op, f.Node, f.Reason)
			}
		}
	}
	tw.Flush()
	if g := s.Geo; g != nil {
		fmt.Fprintf(w, "\nGeo ticket %s: holder %s, term %d, mode %s", g.Ticket.Name, orDash(g.Ticket.Holder), g.Ticket.Term, g.Mode)
		if e := g.Ticket.LeaseExpiry; !e.IsZero() {
			fmt.Fprintf(w, ", lease until %s", e.Local().Format(time.TimeOnly))
		}
		fmt.Fprintln(w)
		for _, site := range g.Sites {
			reach := "reachable"
			if !site.Reachable {
				reach = "UNREACHABLE"
			}
			if site.Arbitrator {
				fmt.Fprintf(w, "  site %s: arbitrator, %s\n", site.Name, reach)
				continue
			}
			fmt.Fprintf(w, "  site %s: %s, %s, %s\n", site.Name, orDash(site.GeoRole), orDash(site.ServiceRole), reach)
		}
		if p := g.Pending; p != nil {
			fmt.Fprintf(w, "  PENDING failover %s -> %s: %s left (expires %s)\n", p.From, p.To,
				p.Expires.Sub(s.Time).Round(time.Second), p.Expires.Local().Format(time.TimeOnly))
		}
	}
	if len(s.Events) > 0 {
		fmt.Fprintln(w, "\nRecent events")
		evs := s.Events
		if len(evs) > 10 {
			evs = evs[len(evs)-10:]
		}
		for _, e := range evs {
			fmt.Fprintf(w, "  %s %-8s %s\n", e.Time.Local().Format(time.TimeOnly), e.Severity, strings.TrimSpace(e.Message))
		}
	}
}

// links sums up a node's heartbeat paths: "links 3/3 up", or the ones
// that are down by name.
func links(ls []protocol.Link) string {
	if len(ls) == 0 {
		return ""
	}
	var down []string
	for _, l := range ls {
		if !l.Up {
			down = append(down, l.Path+" to "+l.Peer)
		}
	}
	if len(down) == 0 {
		return fmt.Sprintf("links %d/%d up", len(ls), len(ls))
	}
	return fmt.Sprintf("links %d/%d up, DOWN: %s", len(ls)-len(down), len(ls), strings.Join(down, ", "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
