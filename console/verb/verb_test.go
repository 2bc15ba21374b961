package verb

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hatui/hatui/protocol"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line string
		opts Options
		// want is the expected action; ignored when code is set.
		want protocol.Action
		// danger is "", "confirm" or "type" (the dialog the console opens).
		danger string
		// code and inErr describe an expected error.
		code  protocol.Code
		inErr string
	}{
		{line: "status", want: protocol.Action{Verb: "status"}},
		{line: "  status   pbx-a2 ", want: protocol.Action{Verb: "status", Args: []string{"pbx-a2"}}},
		{line: "standby pbx-a2", want: protocol.Action{Verb: "standby", Args: []string{"pbx-a2"}}, danger: "confirm"},
		{line: "online pbx-a2", want: protocol.Action{Verb: "online", Args: []string{"pbx-a2"}}, danger: "confirm"},
		{line: "maintenance pbx-a1 on", want: protocol.Action{Verb: "maintenance", Args: []string{"pbx-a1", "on"}}, danger: "confirm"},
		{line: "cleanup asterisk", want: protocol.Action{Verb: "cleanup", Args: []string{"asterisk"}}},
		{line: "cleanup asterisk pbx-a1", want: protocol.Action{Verb: "cleanup", Args: []string{"asterisk", "pbx-a1"}}},
		{line: "switchover pbx", want: protocol.Action{Verb: "switchover", Args: []string{"pbx"}}, danger: "confirm"},
		{line: "fence pbx-b2", want: protocol.Action{Verb: "fence", Args: []string{"pbx-b2"}}, danger: "type"},
		{line: "promote pbx-b1", want: protocol.Action{Verb: "promote", Args: []string{"pbx-b1"}}, danger: "type"},
		{line: "reseed pbx-b1", want: protocol.Action{Verb: "reseed", Args: []string{"pbx-b1"}}, danger: "type"},
		{line: "geo confirm site-b", want: protocol.Action{Verb: "geo confirm", Args: []string{"site-b"}}, danger: "type"},
		{line: "geo abort site-b", want: protocol.Action{Verb: "geo abort", Args: []string{"site-b"}}, danger: "type"},
		{line: "geo grant site-a", want: protocol.Action{Verb: "geo grant", Args: []string{"site-a"}}, danger: "type"},
		{line: "geo revoke site-a", want: protocol.Action{Verb: "geo revoke", Args: []string{"site-a"}}, danger: "type"},
		{line: "switch status", want: protocol.Action{Verb: "switch status"}},
		{line: "switch set lines-a pbx-a2", want: protocol.Action{Verb: "switch set", Args: []string{"lines-a", "pbx-a2"}}, danger: "confirm"},
		{line: "switch discover", want: protocol.Action{Verb: "switch discover"}},
		{line: "power on pdu-a/1", want: protocol.Action{Verb: "power on", Args: []string{"pdu-a/1"}}, danger: "confirm"},
		{line: "power off pdu-a/1", want: protocol.Action{Verb: "power off", Args: []string{"pdu-a/1"}}, danger: "type"},
		{line: "power cycle pdu-a/1", want: protocol.Action{Verb: "power cycle", Args: []string{"pdu-a/1"}}, danger: "type"},
		{line: "cluster activate pbx-a", want: protocol.Action{Verb: "cluster activate", Args: []string{"pbx-a"}}, danger: "confirm"},
		{line: "cluster disable pbx-a --dry-run", want: protocol.Action{Verb: "cluster disable", Args: []string{"pbx-a"}, DryRun: true}},
		{line: "cluster disable --dry-run pbx-a", want: protocol.Action{Verb: "cluster disable", Args: []string{"pbx-a"}, DryRun: true}},
		{line: "help", want: protocol.Action{Verb: "help"}},
		{line: "help geo confirm", want: protocol.Action{Verb: "help", Args: []string{"geo confirm"}}},
		{line: "help geo", want: protocol.Action{Verb: "help", Args: []string{"geo"}}},
		{line: "demo kill pbx-a1", opts: Options{Demo: true}, want: protocol.Action{Verb: "demo kill", Args: []string{"pbx-a1"}}},
		{line: "demo cut site-a", opts: Options{Demo: true}, want: protocol.Action{Verb: "demo cut", Args: []string{"site-a"}}},

		// Usage errors say the right form.
		{line: "", code: protocol.CodeUsage, inErr: "no verb given"},
		{line: "standby", code: protocol.CodeUsage, inErr: "standby needs a NODE (usage: standby NODE)"},
		{line: "standby a b", code: protocol.CodeUsage, inErr: `standby takes one operand, not "b"`},
		{line: "maintenance pbx-a1", code: protocol.CodeUsage, inErr: "maintenance needs on or off (usage: maintenance NODE on|off)"},
		{line: "maintenance pbx-a1 maybe", code: protocol.CodeUsage, inErr: `wants on or off, not "maybe"`},
		{line: "cleanup", code: protocol.CodeUsage, inErr: "cleanup needs a RESOURCE (usage: cleanup RESOURCE [NODE])"},
		{line: "geo", code: protocol.CodeUsage, inErr: "geo needs one of: confirm, abort, grant, revoke"},
		{line: "geo confim site-b", code: protocol.CodeUsage, inErr: `geo has no "confim"`},
		{line: "geo confirm", code: protocol.CodeUsage, inErr: "geo confirm needs a SITE (usage: geo confirm SITE)"},
		{line: "geo abort", code: protocol.CodeUsage, inErr: "geo abort needs a SITE"},
		{line: "geo abort site-b now", code: protocol.CodeUsage, inErr: "geo abort takes"},
		{line: "power", code: protocol.CodeUsage, inErr: "usage: power on OUTLET | power off OUTLET | power cycle OUTLET"},
		{line: "standby pbx-a2 --dry-run", code: protocol.CodeUsage, inErr: "standby does not take --dry-run"},
		{line: "status --json", code: protocol.CodeUsage, inErr: "status does not take --json"},
		{line: "stanby pbx-a2", code: protocol.CodeUnknownVerb, inErr: `unknown verb "stanby" (did you mean "standby"?`},
		{line: "frobnicate", code: protocol.CodeUnknownVerb, inErr: "type 'help' to list the verbs"},
		{line: "demo kill pbx-a1", code: protocol.CodeUnknownVerb, inErr: "demo verbs exist only in hatui --demo"},
		{line: "help frob", code: protocol.CodeUnknownVerb, inErr: `unknown verb "frob"`},
		{line: "standby pbx\x1b[2J", code: protocol.CodeUsage, inErr: "control character"},
		{line: "standby " + strings.Repeat("x", 300), code: protocol.CodeUsage, inErr: "longer than 253 bytes"},
		{line: "standby \xff", code: protocol.CodeUsage, inErr: "not valid UTF-8"},

		// Read-only refuses what changes, and only that.
		{line: "standby pbx-a2", opts: Options{ReadOnly: true}, code: protocol.CodeRefused, inErr: `read-only mode: "standby" changes the deployment`},
		{line: "geo confirm site-b", opts: Options{ReadOnly: true}, code: protocol.CodeRefused, inErr: "start hatui without --read-only"},
		{line: "demo kill pbx-a1", opts: Options{ReadOnly: true, Demo: true}, code: protocol.CodeRefused},
		{line: "status pbx-a2", opts: Options{ReadOnly: true}, want: protocol.Action{Verb: "status", Args: []string{"pbx-a2"}}},
		{line: "switch status", opts: Options{ReadOnly: true}, want: protocol.Action{Verb: "switch status"}},
		{line: "cluster activate pbx-a --dry-run", opts: Options{ReadOnly: true}, want: protocol.Action{Verb: "cluster activate", Args: []string{"pbx-a"}, DryRun: true}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			cmd, err := New(tt.opts).Parse(tt.line)
			if tt.code != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want a %s error", tt.line, cmd.Action, tt.code)
				}
				var pe *protocol.Error
				if !errors.As(err, &pe) || pe.Code != tt.code {
					t.Fatalf("Parse(%q) error = %v, want code %s", tt.line, err, tt.code)
				}
				if !strings.Contains(err.Error(), tt.inErr) {
					t.Fatalf("Parse(%q) error = %q, want it to contain %q", tt.line, err, tt.inErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.line, err)
			}
			if cmd.Action.Verb != tt.want.Verb || !slices.Equal(cmd.Action.Args, tt.want.Args) || cmd.Action.DryRun != tt.want.DryRun {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.line, cmd.Action, tt.want)
			}
			if cmd.Verb.Name != tt.want.Verb {
				t.Fatalf("Parse(%q) verb = %q, want %q", tt.line, cmd.Verb.Name, tt.want.Verb)
			}
			danger := ""
			switch {
			case cmd.Irreversible():
				danger = "type"
			case cmd.Dangerous():
				danger = "confirm"
			}
			if danger != tt.danger {
				t.Fatalf("Parse(%q) dialog = %q, want %q", tt.line, danger, tt.danger)
			}
			if got, want := cmd.Action.String(), strings.Join(strings.Fields(strings.ReplaceAll(tt.line, "--dry-run", "")), " "); got != want && !strings.HasPrefix(tt.line, "help") {
				t.Fatalf("Action.String() = %q, want %q", got, want)
			}
		})
	}
}

func TestTableInvariants(t *testing.T) {
	seen := map[string]bool{}
	for i := range all {
		v := &all[i]
		if seen[v.Name] {
			t.Errorf("verb %q is listed twice", v.Name)
		}
		seen[v.Name] = true
		if v.Help == "" {
			t.Errorf("verb %q has no help", v.Name)
		}
		if v.Irreversible && (!v.Dangerous || !v.Changes) {
			t.Errorf("verb %q is irreversible but not dangerous and changing", v.Name)
		}
		if v.Irreversible && (len(v.Args) == 0 || v.Args[0].Optional) {
			t.Errorf("verb %q is irreversible but has no required first operand to type", v.Name)
		}
		if v.Dangerous && !v.Changes {
			t.Errorf("verb %q is dangerous but changes nothing", v.Name)
		}
		optional := false
		for _, a := range v.Args {
			if optional && !a.Optional {
				t.Errorf("verb %q has a required operand after an optional one", v.Name)
			}
			optional = optional || a.Optional
		}
	}
	// The brief's irreversible set, checked by name so a table edit that
	// loosens one is caught.
	for _, name := range []string{"fence", "promote", "reseed", "geo confirm", "geo grant", "geo revoke", "power off", "power cycle"} {
		v, ok := New(Options{}).Lookup(name)
		if !ok || !v.Irreversible {
			t.Errorf("verb %q must exist and be irreversible", name)
		}
	}
}

func TestDemoVerbsOnlyInDemo(t *testing.T) {
	for _, v := range New(Options{}).Verbs() {
		if v.Demo {
			t.Errorf("demo verb %q offered outside the demo", v.Name)
		}
	}
	n := 0
	for _, v := range New(Options{Demo: true}).Verbs() {
		if v.Demo {
			n++
		}
	}
	if n != 4 {
		t.Errorf("demo table has %d demo verbs, want 4", n)
	}
}

func TestHelpAndDescribe(t *testing.T) {
	tb := New(Options{ReadOnly: true})
	h := tb.Help()
	for _, want := range []string{"standby NODE", "maintenance NODE on|off", "cluster disable CLUSTER [--dry-run]", "geo confirm SITE", "(refused: read-only mode)"} {
		if !strings.Contains(h, want) {
			t.Errorf("Help() lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "demo kill") {
		t.Errorf("Help() lists demo verbs outside the demo")
	}
	v, _ := New(Options{}).Lookup("fence")
	if d := New(Options{}).Describe(v); !strings.Contains(d, "you type the node's name") {
		t.Errorf("Describe(fence) = %q, want the typed-name warning", d)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"status", "standby pbx-a2", "geo confirm site-b", "cluster disable pbx-a --dry-run",
		"maintenance pbx-a1 on", "power cycle pdu/1", "help geo", "demo kill x", "", "--", "geo", "\xff", "a\x00b"} {
		f.Add(s, false, true)
	}
	f.Fuzz(func(t *testing.T, line string, ro, demo bool) {
		cmd, err := New(Options{ReadOnly: ro, Demo: demo}).Parse(line)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Message == "" {
				t.Fatalf("Parse(%q) returned an untyped or empty error %v", line, err)
			}
			return
		}
		if cmd.Verb == nil || cmd.Action.Verb != cmd.Verb.Name {
			t.Fatalf("Parse(%q) = %+v without a matching verb", line, cmd)
		}
		if ro && cmd.Changes() {
			t.Fatalf("Parse(%q) let a changing verb through in read-only mode", line)
		}
		if len(cmd.Action.Args) < cmd.Verb.RequiredArgs() {
			t.Fatalf("Parse(%q) accepted too few operands", line)
		}
		if cmd.Irreversible() && cmd.Target() == "" {
			t.Fatalf("Parse(%q) is irreversible without a target to type", line)
		}
	})
}

func TestValueFlags(t *testing.T) {
	tab := New(Options{})
	tests := []struct {
		line   string
		values map[string]string
		inErr  string
	}{
		{line: "history", values: map[string]string{}},
		{line: "history --since 1h --node pbx-a2", values: map[string]string{"--since": "1h", "--node": "pbx-a2"}},
		{line: "history --since=30m --limit 5", values: map[string]string{"--since": "30m", "--limit": "5"}},
		{line: "history --since", inErr: "--since needs a value (DURATION)"},
		{line: "history --since --node a", inErr: "--since needs a value"},
		{line: "history --dry-run", inErr: "history does not take --dry-run"},
		{line: "cluster disable pbx-a --dry-run=yes", inErr: "--dry-run takes no value"},
		{line: "history pbx-a2", inErr: "history takes no operands"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			cmd, err := tab.Parse(tt.line)
			if tt.inErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.inErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.inErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(cmd.Values, tt.values) {
				t.Fatalf("values %v, want %v", cmd.Values, tt.values)
			}
		})
	}
}

// TestCheck: a command naming a node, site or cluster the deployment
// does not have, or a database verb for a running node without a
// database, is refused from the snapshot, with the names that exist.
func TestCheck(t *testing.T) {
	snap := &protocol.Snapshot{Deployment: "demo", Sites: []protocol.Site{
		{Name: "a", Clusters: []protocol.Cluster{{Name: "a",
			Nodes:     []protocol.Node{{Name: "pbx-a1", Member: protocol.MemberAlive}, {Name: "pbx-a2", Member: protocol.MemberFailed}}, // pbx-a2's database is not reported while it is down
			Databases: []protocol.Database{{Node: "pbx-a1", Role: "master"}}}}},
		{Name: "b", Clusters: []protocol.Cluster{{Name: "b", Nodes: []protocol.Node{{Name: "pbx-b1", Member: protocol.MemberAlive}}}}},
	}}
	tab := New(Options{Demo: true})
	tests := []struct {
		line string
		code protocol.Code
		msg  string
		hint string
	}{
		{"reseed pbx-a1", "", "", ""},
		{"reseed pbx-a2", "", "", ""}, // down: its own agent answers for it
		{"reseed nosuch", protocol.CodeUnknownNode, `no node named "nosuch" in demo`, "nodes: pbx-a1, pbx-a2, pbx-b1"},
		{"reseed pbx-b1", protocol.CodeRefused, "pbx-b1 runs no database: reseed works on a node with a [database] section", "nodes with a database: pbx-a1"},
		{"promote pbx-b1", protocol.CodeRefused, "pbx-b1 runs no database", ""},
		{"standby pbx-b1", "", "", ""},
		{"geo confirm z", protocol.CodeUnknownNode, `no site named "z" in demo`, "sites: a, b"},
		{"cluster activate b", "", "", ""},
		{"demo kill pbx-zz", protocol.CodeUnknownNode, `no node named "pbx-zz"`, ""},
	}
	for _, tt := range tests {
		c, err := tab.Parse(tt.line)
		if err != nil {
			t.Fatalf("%s: %v", tt.line, err)
		}
		err = c.Check(snap)
		if protocol.CodeOf(err) != tt.code {
			t.Errorf("%s: err = %v, want code %q", tt.line, err, tt.code)
			continue
		}
		if err == nil {
			continue
		}
		pe := protocol.AsError(err)
		if !strings.HasPrefix(pe.Message, tt.msg) || !strings.Contains(pe.Hint, tt.hint) {
			t.Errorf("%s: %q (hint %q), want %q (hint %q)", tt.line, pe.Message, pe.Hint, tt.msg, tt.hint)
		}
	}
	if c, _ := tab.Parse("reseed nosuch"); c.Check(nil) != nil {
		t.Error("a nil snapshot refused a command")
	}
}
