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

	"github.com/hatui/hatui/console/sides"
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
	// History asks the agent for past events; nil when the console cannot.
	History func(ctx context.Context, req protocol.HistoryRequest) (*protocol.History, error)
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
	case "history":
		return r.history(ctx, cmd.Values)
	case "check":
		snap, err := r.Status(ctx, "")
		if err != nil {
			return CheckUnreachable(r.Out, err)
		}
		res := Check(snap)
		if r.JSON {
			r.json(res)
		} else {
			fmt.Fprintln(r.Out, res.Line())
		}
		return res.Code
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

// history runs the history verb.
func (r *Runner) history(ctx context.Context, values map[string]string) int {
	req, err := verb.HistoryRequest(values, time.Now())
	if err != nil {
		return r.Fail(err)
	}
	if r.History == nil {
		return r.Fail(protocol.Errorf(protocol.CodeRefused, "ask an agent directly", "this console cannot ask for history"))
	}
	h, err := r.History(ctx, req)
	if err != nil {
		return r.Fail(err)
	}
	if r.JSON {
		return r.json(h)
	}
	WriteHistory(r.Out, h)
	return ExitOK
}

// WriteHistory prints history entries one per line: time, node, severity,
// and the message (audit entries say who did what and how it ended).
func WriteHistory(w io.Writer, h *protocol.History) {
	if h.Truncated {
		fmt.Fprintln(w, "(older entries left out: narrow with --since or --node, or raise --limit)")
	}
	if len(h.Events) == 0 {
		fmt.Fprintln(w, "no entries")
		return
	}
	for _, e := range h.Events {
		fmt.Fprintf(w, "%s  %-12s %-8s %-8s %s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Node, e.Severity, e.Kind, e.Message)
	}
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
	if p := s.Partition; p != nil {
		fmt.Fprintln(w, "PARTITION: "+sides.Describe(p, time.Now()))
	}
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
		if sd := sides.SiteSide(s.Partition, site.Name); sd != nil && sd.Via != s.Partition.Quorum {
			kind += " (cut off: as " + sd.Via + " sees it)"
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
					state := r.State
					if r.Warm && r.Node != g.Active && r.State == "started" {
						state = "warm standby" // running, ready for the address
					}
					line := fmt.Sprintf("      %s\t%s\t%s", r.Name, r.Type, state)
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
				for _, line := range databaseLines(d, s.Time) {
					fmt.Fprintln(tw, line)
				}
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

// databaseLines renders one database for the status text: a line of
// columns (role; for one that is down, since when, its last known
// position and who saw it), then lines of their own for its catch-up, its
// slots and pg_wal's disk on a master, and each notice with what to do.
func databaseLines(d protocol.Database, now time.Time) []string {
	role := d.Role
	absent := d.Role == "down" || d.Role == "unknown"
	if absent {
		role = strings.ToUpper(d.Role)
		if d.Since != nil {
			role += fmt.Sprintf(" since %s (%s ago)", d.Since.Local().Format(time.TimeOnly), now.Sub(*d.Since).Round(time.Second))
		}
	}
	line := fmt.Sprintf("    database %s\t%s\ttimeline %d", d.Node, role, d.Timeline)
	switch {
	case d.Role == "standby" || d.Role == "geo-standby":
		line += fmt.Sprintf("\tlag %d bytes", d.LagBytes)
		if !d.Streaming {
			line += "\tNOT STREAMING"
		}
	case absent && d.LSN != "":
		line += "\tlast known " + d.LSN
	}
	if d.SeenBy != "" {
		line += "\tseen by " + d.SeenBy
	}
	if !d.Healthy && d.Health != "" && d.SeenBy == "" { // an absent peer's notice says why
		line += "\tUNHEALTHY: " + d.Health
	}
	out := []string{line}
	if c := d.CatchUp; c != nil {
		l := fmt.Sprintf("      catching up: %s behind", iec(c.BytesBehind))
		if c.RateBytes > 0 {
			l += fmt.Sprintf(", gaining %s/s", iec(int64(c.RateBytes)))
		}
		if c.ETASeconds != nil {
			l += fmt.Sprintf(", about %s left", (time.Duration(*c.ETASeconds) * time.Second).Round(time.Second))
		}
		out = append(out, l+fmt.Sprintf(" (since %s); nothing to do: it is left to catch up, never re-seeded for it", c.Since.Local().Format(time.TimeOnly)))
	}
	for _, sl := range d.Slots {
		l := "      slot " + sl.Name
		if sl.Node != "" {
			l += " (" + sl.Node + ")"
		}
		state := "inactive"
		if sl.Active {
			state = "active"
		}
		l += fmt.Sprintf(": %s, holds %s of WAL", state, iec(sl.RetainedBytes))
		switch {
		case sl.WALStatus == "lost":
			l += ", LOST (its standby needs a re-seed)"
		case sl.SafeBytes != nil:
			l += fmt.Sprintf(", dropped by max_slot_wal_keep_size after %s more", iec(*sl.SafeBytes))
		}
		if sl.Warning {
			l += ", WARNING"
		}
		out = append(out, l)
	}
	if disk := d.WALDisk; disk != nil && len(d.Slots) > 0 {
		out = append(out, fmt.Sprintf("      pg_wal disk %s: %.0f%% used, %s free", disk.Path, disk.UsedPercent, iec(disk.FreeBytes)))
	}
	for _, n := range d.Notices {
		word := "note"
		switch n.Severity {
		case protocol.SevCritical:
			word = "CRITICAL"
		case protocol.SevWarning:
			word = "WARNING"
		}
		out = append(out, "      "+word+": "+n.Message)
		if n.Hint != "" {
			out = append(out, "        do: "+n.Hint)
		}
	}
	return out
}

// iec renders a byte count with binary units.
func iec(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
