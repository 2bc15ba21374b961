// Package verb is the one table of operator verbs shared by the console's
// `:` command line and `hatui --exec`. A verb line such as
// "standby pbx-a2" or "geo confirm site-b" is parsed here into a
// [protocol.Action], or into a usage error that names the right form, so
// that the two entry points can never drift apart.
//
// Each [Verb] also carries the safety class the console needs before it
// sends anything: whether the verb changes the deployment (read-only mode
// refuses those), whether it is dangerous (a confirm dialog that starts on
// Cancel) and whether it is irreversible (the operator types the target's
// name). Keeping that class next to the grammar means a new verb cannot be
// added without deciding how careful the console must be with it.
//
// Multi-word verbs ("geo confirm", "power off") travel as one
// [protocol.Action.Verb] with the operands in Args, so an agent dispatches
// on the whole verb and Action.String still reads as the operator typed it.
package verb

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hatui/hatui/protocol"
)

// Kind says what an argument names, so that a caller holding a snapshot
// can check that the node, site or cluster exists before sending.
type Kind int

// Argument kinds.
const (
	KindWord     Kind = iota // any word the agent interprets
	KindNode                 // a node name
	KindSite                 // a site name
	KindCluster              // a cluster name
	KindGroup                // a service group name
	KindResource             // a resource name
	KindSwitch               // a line or power switch name
	KindOutlet               // a power outlet name
	KindChoice               // one of Arg.Choices
	KindVerb                 // a verb name (for help)
	KindDBNode               // a node that runs a database
)

// Arg describes one operand of a verb.
type Arg struct {
	Name     string   // upper case in synopses: NODE, SITE
	Kind     Kind     // what the word names
	Optional bool     // may be left out; only trailing arguments are optional
	Choices  []string // the accepted words when Kind is KindChoice
}

// synopsis renders the argument as usage text shows it.
func (a Arg) synopsis() string {
	s := a.Name
	if a.Kind == KindChoice {
		s = strings.Join(a.Choices, "|")
	}
	if a.Optional {
		s = "[" + s + "]"
	}
	return s
}

// Verb is one entry of the table.
type Verb struct {
	// Name is the verb as typed, one or two words ("standby", "geo confirm").
	Name string
	// Args are the operands, in order.
	Args []Arg
	// Flags are the "--" options the verb accepts: "--dry-run", or with a
	// value named after a space, "--since DURATION" (typed "--since 1h" or
	// "--since=1h").
	Flags []string
	// Help is the one-line description shown in help and usage errors.
	Help string
	// Changes is set when the verb alters the deployment; read-only mode
	// refuses such verbs.
	Changes bool
	// Dangerous verbs go through a confirm dialog that starts on Cancel.
	Dangerous bool
	// Irreversible verbs want the target's name (their first argument)
	// typed before they are sent. Irreversible implies Dangerous.
	Irreversible bool
	// Demo verbs exist only when the console runs the demo deployment.
	Demo bool
	// Local verbs are answered by the console itself (help) or by a status
	// request rather than an action (status).
	Local bool
}

// Synopsis returns the verb's usage form, e.g. "maintenance NODE on|off".
func (v *Verb) Synopsis() string {
	parts := []string{v.Name}
	for _, a := range v.Args {
		parts = append(parts, a.synopsis())
	}
	for _, f := range v.Flags {
		parts = append(parts, "["+f+"]")
	}
	return strings.Join(parts, " ")
}

// Usage returns "usage: SYNOPSIS — HELP".
func (v *Verb) Usage() string {
	return "usage: " + v.Synopsis() + " — " + v.Help
}

// RequiredArgs returns how many operands the verb needs at least.
func (v *Verb) RequiredArgs() int {
	n := 0
	for _, a := range v.Args {
		if !a.Optional {
			n++
		}
	}
	return n
}

var (
	node     = Arg{Name: "NODE", Kind: KindNode}
	optNode  = Arg{Name: "NODE", Kind: KindNode, Optional: true}
	site     = Arg{Name: "SITE", Kind: KindSite}
	cluster  = Arg{Name: "CLUSTER", Kind: KindCluster}
	outlet   = Arg{Name: "OUTLET", Kind: KindOutlet}
	dryRun   = "--dry-run"
	onOff    = Arg{Name: "on|off", Kind: KindChoice, Choices: []string{"on", "off"}}
	optVerb  = Arg{Name: "VERB", Kind: KindVerb, Optional: true}
	dbNode   = Arg{Name: "NODE", Kind: KindDBNode}
	group    = Arg{Name: "GROUP", Kind: KindGroup}
	resource = Arg{Name: "RESOURCE", Kind: KindResource}
)

// all is the whole table, in the order help lists it. Read-only verbs
// first, then everyday actions, then the careful ones, then the demo.
var all = []Verb{
	{Name: "help", Args: []Arg{optVerb}, Help: "list the verbs, or explain one", Local: true},
	{Name: "status", Args: []Arg{optNode}, Help: "show the deployment, or one node as its own agent sees it", Local: true},
	{Name: "check", Help: "one status line for monitoring (Nagios/Icinga plugin exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) with perfdata", Local: true},
	{Name: "history", Flags: []string{"--since DURATION", "--node NODE", "--limit N"}, Help: "what happened and who did what, kept across restarts: --since 1h, --node NODE, --limit N", Local: true},

	{Name: "standby", Args: []Arg{node}, Help: "put a node in standby: its service groups move to another node", Changes: true, Dangerous: true},
	{Name: "online", Args: []Arg{node}, Help: "take a node out of standby so it may run service groups again", Changes: true, Dangerous: true},
	{Name: "maintenance", Args: []Arg{node, onOff}, Help: "stop or resume managing a node's resources (nothing is started or stopped while on)", Changes: true, Dangerous: true},
	{Name: "cleanup", Args: []Arg{resource, optNode}, Help: "clear a resource's failed actions and fail counts so it may run again", Changes: true},
	{Name: "switchover", Args: []Arg{group, optNode}, Help: "move a service group in a planned way: the standby is ready before the active lets go", Changes: true, Dangerous: true},

	{Name: "fence", Args: []Arg{node}, Help: "power off or isolate a node so it can no longer hold resources", Changes: true, Dangerous: true, Irreversible: true},
	{Name: "promote", Args: []Arg{dbNode}, Help: "promote a node's database standby to master", Changes: true, Dangerous: true, Irreversible: true},
	{Name: "reseed", Args: []Arg{dbNode}, Help: "wipe a node's database standby and copy it afresh from the master", Changes: true, Dangerous: true, Irreversible: true},

	{Name: "geo confirm", Args: []Arg{site}, Help: "confirm the pending geo failover to a site now, before the dead man's timer runs out", Changes: true, Dangerous: true, Irreversible: true},
	{Name: "geo abort", Args: []Arg{site}, Help: "abort the pending geo failover to SITE: service stays where it is", Changes: true, Dangerous: true, Irreversible: true},
	{Name: "geo grant", Args: []Arg{site}, Help: "grant the geo ticket to a site by hand", Changes: true, Dangerous: true, Irreversible: true},
	{Name: "geo revoke", Args: []Arg{site}, Help: "revoke the geo ticket from a site by hand", Changes: true, Dangerous: true, Irreversible: true},

	{Name: "switch status", Args: []Arg{{Name: "SWITCH", Kind: KindSwitch, Optional: true}}, Help: "ask the line and power switches for their state"},
	{Name: "switch set", Args: []Arg{{Name: "SWITCH", Kind: KindSwitch}, {Name: "POSITION", Kind: KindWord}}, Help: "move a line switch's phone lines to a node (or to normal / failover)", Changes: true, Dangerous: true},
	{Name: "switch discover", Help: "look for line switches on the network and serial ports", Changes: true},

	{Name: "power on", Args: []Arg{outlet}, Help: "switch a power outlet on", Changes: true, Dangerous: true},
	{Name: "power off", Args: []Arg{outlet}, Help: "switch a power outlet off: the machine on it loses power", Changes: true, Dangerous: true, Irreversible: true},
	{Name: "power cycle", Args: []Arg{outlet}, Help: "switch a power outlet off and on again: the machine on it reboots hard", Changes: true, Dangerous: true, Irreversible: true},

	{Name: "cluster activate", Args: []Arg{cluster}, Flags: []string{dryRun}, Help: "bring a cluster into service; --dry-run shows the steps only", Changes: true, Dangerous: true},
	{Name: "cluster disable", Args: []Arg{cluster}, Flags: []string{dryRun}, Help: "stop managing a cluster, standby side first; its group keeps running, unmanaged; --dry-run shows the steps only", Changes: true, Dangerous: true},
	{Name: "cluster stop", Args: []Arg{cluster}, Flags: []string{dryRun}, Help: "take a cluster out of service: standby side disabled first, then the active stops its group; --dry-run shows the steps only", Changes: true, Dangerous: true, Irreversible: true},

	{Name: "demo kill", Args: []Arg{node}, Help: "demo: stop a node's agent as if it crashed", Changes: true, Demo: true},
	{Name: "demo revive", Args: []Arg{node}, Help: "demo: start a killed node again", Changes: true, Demo: true},
	{Name: "demo cut", Args: []Arg{site}, Help: "demo: cut a site off the network", Changes: true, Demo: true},
	{Name: "demo heal", Args: []Arg{site}, Help: "demo: reconnect a site that was cut off", Changes: true, Demo: true},
}

// valueFlags are the flags of the table that take a value.
var valueFlags = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range all {
		for _, f := range v.Flags {
			if name, _, ok := strings.Cut(f, " "); ok {
				m[name] = true
			}
		}
	}
	return m
}()

// Options select the table a caller sees.
type Options struct {
	// Demo makes the demo verbs available.
	Demo bool
	// ReadOnly makes Parse refuse every verb that changes the deployment.
	ReadOnly bool
}

// Table is the set of verbs one console (or one --exec run) accepts.
type Table struct {
	opts  Options
	verbs []*Verb
}

// New returns the table for the given options.
func New(opts Options) *Table {
	t := &Table{opts: opts}
	for i := range all {
		v := &all[i]
		if v.Demo && !opts.Demo {
			continue
		}
		t.verbs = append(t.verbs, v)
	}
	return t
}

// Verbs returns the verbs of the table in help order. The caller must not
// modify them.
func (t *Table) Verbs() []*Verb { return t.verbs }

// Lookup returns the verb with the given name ("geo confirm").
func (t *Table) Lookup(name string) (*Verb, bool) {
	for _, v := range t.verbs {
		if v.Name == name {
			return v, true
		}
	}
	return nil, false
}

// ReadOnly reports whether the table refuses changing verbs.
func (t *Table) ReadOnly() bool { return t.opts.ReadOnly }

// Command is a parsed verb line: the verb it names and the action to send.
type Command struct {
	Verb   *Verb
	Action protocol.Action
	// Values holds the value flags given ("--since" → "1h").
	Values map[string]string
}

// Changes reports whether running the command alters the deployment. A
// dry run never does, so it is allowed in read-only mode and needs no
// confirmation.
func (c Command) Changes() bool { return c.Verb.Changes && !c.Action.DryRun }

// Dangerous reports whether the command needs a confirm dialog.
func (c Command) Dangerous() bool { return c.Changes() && (c.Verb.Dangerous || c.Verb.Irreversible) }

// Irreversible reports whether the command needs its target typed.
func (c Command) Irreversible() bool { return c.Changes() && c.Verb.Irreversible }

// Target returns the name the operator must type to confirm an
// irreversible command: its first operand, or "" when it has none.
func (c Command) Target() string {
	if len(c.Action.Args) == 0 {
		return ""
	}
	return c.Action.Args[0]
}

// Check refuses a command whose node, site or cluster is not in the
// snapshot, or whose database verb names a node that runs no database,
// before it travels to an agent, and before anyone is asked to confirm
// it: confirming an action on a node that does not exist is a question
// that should never be asked. Errors are *protocol.Error with
// CodeUnknownNode or CodeRefused. A nil snapshot checks nothing.
func (c Command) Check(snap *protocol.Snapshot) error {
	if snap == nil {
		return nil
	}
	for i, w := range c.Action.Args {
		if i >= len(c.Verb.Args) {
			break
		}
		var known []string
		var what string
		switch c.Verb.Args[i].Kind {
		case KindNode, KindDBNode:
			what = "node"
			for _, n := range snap.Nodes() {
				known = append(known, n.Name)
			}
		case KindSite:
			what = "site"
			for _, s := range snap.Sites {
				known = append(known, s.Name)
			}
		case KindCluster:
			what = "cluster"
			for _, s := range snap.Sites {
				for _, cl := range s.Clusters {
					known = append(known, cl.Name)
				}
			}
		default:
			continue
		}
		if !slices.Contains(known, w) {
			return &protocol.Error{Code: protocol.CodeUnknownNode,
				Message: fmt.Sprintf("no %s named %q in %s", what, w, snap.Deployment),
				Hint:    what + "s: " + list(known)}
		}
		if c.Verb.Args[i].Kind == KindDBNode {
			if err := checkDatabase(snap, c.Verb.Name, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkDatabase refuses a database verb for a node that is up and reports
// no database: its agent would not know the verb, and "unknown action"
// would not say why. A node that is down may still have one: its own
// agent answers for it.
func checkDatabase(snap *protocol.Snapshot, verb, node string) error {
	var dbs []string
	for _, c := range snap.Clusters() {
		for _, d := range c.Databases {
			if d.Node == node {
				return nil
			}
			dbs = append(dbs, d.Node)
		}
	}
	if n, ok := snap.FindNode(node); !ok || n.Member != protocol.MemberAlive {
		return nil
	}
	hint := "no node of " + snap.Deployment + " reports a database"
	if len(dbs) > 0 {
		hint = "nodes with a database: " + list(dbs)
	}
	return &protocol.Error{Code: protocol.CodeRefused,
		Message: fmt.Sprintf("%s runs no database: %s works on a node with a [database] section", node, verb),
		Hint:    hint}
}

// list names up to eight words, and how many more there are.
func list(words []string) string {
	if len(words) > 8 {
		return strings.Join(words[:8], ", ") + fmt.Sprintf(" and %d more", len(words)-8)
	}
	return strings.Join(words, ", ")
}

// maxWord bounds one word of a command line. Host names are at most 253
// bytes; anything longer is a paste accident, not a name.
const maxWord = 253

// Parse turns a command line into a Command. Errors are *protocol.Error
// with CodeUnknownVerb (no such verb; the hint suggests the nearest),
// CodeUsage (wrong operands; the hint is the verb's usage line) or
// CodeRefused (a changing verb in read-only mode).
func (t *Table) Parse(line string) (Command, error) {
	words, flags, err := split(line)
	if err != nil {
		return Command{}, err
	}
	if len(words) == 0 {
		return Command{}, &protocol.Error{Code: protocol.CodeUsage,
			Message: "no verb given",
			Hint:    "type a verb such as 'status' or 'standby NODE'; 'help' lists them all"}
	}
	v, rest, err := t.find(words)
	if err != nil {
		return Command{}, err
	}
	if v.Name == "help" && len(rest) > 1 {
		rest = []string{strings.Join(rest, " ")} // "help geo confirm"
	}
	a := protocol.Action{Verb: v.Name}
	values := map[string]string{}
	for _, f := range flags {
		name, val, hasVal := strings.Cut(f, "=")
		i := slices.IndexFunc(v.Flags, func(x string) bool { n, _, _ := strings.Cut(x, " "); return n == name })
		if i < 0 {
			return Command{}, t.usage(v, "%s does not take %s", v.Name, name)
		}
		_, what, takesVal := strings.Cut(v.Flags[i], " ")
		switch {
		case takesVal && (!hasVal || val == ""):
			return Command{}, t.usage(v, "%s needs a value (%s)", name, what)
		case !takesVal && hasVal:
			return Command{}, t.usage(v, "%s takes no value", name)
		}
		if name == dryRun {
			a.DryRun = true
		}
		if takesVal {
			values[name] = val
		}
	}
	if len(rest) < v.RequiredArgs() {
		missing := v.Args[len(rest)]
		return Command{}, t.usage(v, "%s needs %s", v.Name, article(missing))
	}
	if len(rest) > len(v.Args) {
		return Command{}, t.usage(v, "%s takes %s, not %q", v.Name, countArgs(v), strings.Join(rest[len(v.Args):], " "))
	}
	for i, w := range rest {
		arg := v.Args[i]
		if arg.Kind == KindChoice && !slices.Contains(arg.Choices, w) {
			return Command{}, t.usage(v, "%s wants %s, not %q", v.Name, strings.Join(arg.Choices, " or "), w)
		}
		if arg.Kind == KindVerb {
			if _, ok := t.lookupPrefix(w); !ok {
				return Command{}, t.unknown(w)
			}
		}
	}
	a.Args = rest
	cmd := Command{Verb: v, Action: a, Values: values}
	if t.opts.ReadOnly && cmd.Changes() {
		return Command{}, &protocol.Error{Code: protocol.CodeRefused,
			Message: fmt.Sprintf("read-only mode: %q changes the deployment", v.Name),
			Hint:    "start hatui without --read-only to act"}
	}
	return cmd, nil
}

// find matches the longest verb name at the start of words.
func (t *Table) find(words []string) (*Verb, []string, error) {
	if len(words) >= 2 {
		if v, ok := t.Lookup(words[0] + " " + words[1]); ok {
			return v, words[2:], nil
		}
	}
	if v, ok := t.Lookup(words[0]); ok {
		return v, words[1:], nil
	}
	// A family word alone ("geo", "power") or with a wrong second word
	// is a usage error of the family, not an unknown verb.
	if fam := t.family(words[0]); len(fam) > 0 {
		var names []string
		for _, v := range fam {
			names = append(names, strings.TrimPrefix(v.Name, words[0]+" "))
		}
		msg := fmt.Sprintf("%s needs one of: %s", words[0], strings.Join(names, ", "))
		if len(words) >= 2 {
			msg = fmt.Sprintf("%s has no %q; it takes one of: %s", words[0], words[1], strings.Join(names, ", "))
		}
		var forms []string
		for _, v := range fam {
			forms = append(forms, v.Synopsis())
		}
		return nil, nil, &protocol.Error{Code: protocol.CodeUsage, Message: msg,
			Hint: "usage: " + strings.Join(forms, " | ")}
	}
	return nil, nil, t.unknown(words[0])
}

// family returns the multi-word verbs starting with first.
func (t *Table) family(first string) []*Verb {
	var out []*Verb
	for _, v := range t.verbs {
		if strings.HasPrefix(v.Name, first+" ") {
			out = append(out, v)
		}
	}
	return out
}

// lookupPrefix accepts a whole verb name or a family's first word, for
// "help geo".
func (t *Table) lookupPrefix(w string) (*Verb, bool) {
	if v, ok := t.Lookup(w); ok {
		return v, true
	}
	if fam := t.family(w); len(fam) > 0 {
		return fam[0], true
	}
	return nil, false
}

func (t *Table) unknown(w string) error {
	hint := "type 'help' to list the verbs"
	if !t.opts.Demo && w == "demo" {
		hint = "demo verbs exist only in hatui --demo; " + hint
	} else if s := t.nearest(w); s != "" {
		hint = fmt.Sprintf("did you mean %q? ", s) + hint
	}
	return &protocol.Error{Code: protocol.CodeUnknownVerb,
		Message: fmt.Sprintf("unknown verb %q", w), Hint: hint}
}

// nearest returns the verb (or family) name closest to w by edit
// distance, when it is close enough to be a typo.
func (t *Table) nearest(w string) string {
	best, bestD := "", 3
	seen := map[string]bool{}
	for _, v := range t.verbs {
		name, _, _ := strings.Cut(v.Name, " ")
		if seen[name] {
			continue
		}
		seen[name] = true
		if d := distance(w, name); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

func (t *Table) usage(v *Verb, format string, args ...any) error {
	return &protocol.Error{Code: protocol.CodeUsage,
		Message: fmt.Sprintf(format, args...),
		Hint:    "usage: " + v.Synopsis()}
}

// split breaks a line into words and "--" flags, refusing control
// characters (they would be echoed into a terminal or an audit log) and
// absurdly long words.
func split(line string) (words, flags []string, err error) {
	if !utf8.ValidString(line) {
		return nil, nil, &protocol.Error{Code: protocol.CodeUsage,
			Message: "the command line is not valid UTF-8", Hint: "retype the command"}
	}
	fields := strings.Fields(line)
	for _, f := range fields {
		for _, r := range f {
			if unicode.IsControl(r) || !unicode.IsPrint(r) {
				return nil, nil, &protocol.Error{Code: protocol.CodeUsage,
					Message: fmt.Sprintf("the command line holds a control character (%U)", r),
					Hint:    "retype the command without pasting terminal escapes"}
			}
		}
		if len(f) > maxWord {
			return nil, nil, &protocol.Error{Code: protocol.CodeUsage,
				Message: fmt.Sprintf("the word %q… is longer than %d bytes", string([]rune(f)[:16]), maxWord),
				Hint:    "node, site and resource names are short words"}
		}
	}
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if strings.HasPrefix(f, "--") && len(f) > 2 {
			// A value flag takes the next word: "--since 1h".
			if valueFlags[f] && i+1 < len(fields) && !strings.HasPrefix(fields[i+1], "--") {
				i++
				f += "=" + fields[i]
			}
			flags = append(flags, f)
			continue
		}
		words = append(words, f)
	}
	return words, flags, nil
}

func article(a Arg) string {
	if a.Kind == KindChoice {
		return strings.Join(a.Choices, " or ")
	}
	n := strings.ToLower(a.Name)
	if strings.ContainsRune("aeiou", rune(n[0])) {
		return "an " + a.Name
	}
	return "a " + a.Name
}

func countArgs(v *Verb) string {
	switch len(v.Args) {
	case 0:
		return "no operands"
	case 1:
		return "one operand"
	}
	return fmt.Sprintf("at most %d operands", len(v.Args))
}

// distance is the Levenshtein distance between a and b, used only to
// suggest a verb for a typo.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Describe explains one verb: its usage and how careful the console is
// with it.
func (t *Table) Describe(v *Verb) string {
	s := v.Usage()
	switch {
	case !v.Changes:
		s += " (read-only)"
	case t.opts.ReadOnly:
		s += " (refused: read-only mode)"
	case v.Irreversible:
		s += " (irreversible: you type the " + strings.ToLower(v.Args[0].Name) + "'s name to confirm)"
	case v.Dangerous:
		s += " (asks for confirmation)"
	}
	return s
}

// Help returns the verb list as help text: one "synopsis  help" line per
// verb, marking those read-only mode refuses.
func (t *Table) Help() string {
	width := 0
	for _, v := range t.verbs {
		width = max(width, len(v.Synopsis()))
	}
	var b strings.Builder
	for _, v := range t.verbs {
		fmt.Fprintf(&b, "%-*s  %s", width, v.Synopsis(), v.Help)
		if t.opts.ReadOnly && v.Changes {
			b.WriteString(" (refused: read-only mode)")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// HistoryRequest builds a history request from the verb's value flags:
// --since takes a duration back from now ("90m", "2h", "3d"), --node a
// node, --limit a count.
func HistoryRequest(values map[string]string, now time.Time) (protocol.HistoryRequest, error) {
	var req protocol.HistoryRequest
	if v, ok := values["--since"]; ok {
		d, err := parseAge(v)
		if err != nil {
			return req, protocol.Errorf(protocol.CodeUsage, "a duration such as 30m, 2h or 3d", "--since %q: %v", v, err)
		}
		req.Since = now.Add(-d)
	}
	req.Node = values["--node"]
	if v, ok := values["--limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return req, protocol.Errorf(protocol.CodeUsage, "a positive whole number such as 100", "--limit %q is not a count", v)
		}
		req.Limit = n
	}
	return req, nil
}

// parseAge is time.ParseDuration that also takes days ("3d").
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("not a number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative")
	}
	return d, err
}
