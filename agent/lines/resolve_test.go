package lines_test

import (
	"testing"

	"github.com/hatui/hatui/agent/lines"
	"github.com/hatui/hatui/protocol"
)

// deployment has a line switch driven by a1, and two power switches: an
// iBoot on b1 powering b2, and a berofos's two outlets on a2 powering a1
// and nothing.
func deployment() *protocol.Snapshot {
	return &protocol.Snapshot{Deployment: "d", Sites: []protocol.Site{
		{Name: "a", Clusters: []protocol.Cluster{{Name: "a",
			Nodes: []protocol.Node{{Name: "a1"}, {Name: "a2"}},
			Switches: []protocol.Switch{
				{Name: "lines-a", Kind: "line", Driver: "berofos", Node: "a1"},
				{Name: "bero-power", Kind: "power", Driver: "berofos", Node: "a2", Outlets: []protocol.Outlet{{Name: "0", Node: "a1"}, {Name: "1"}}},
			}}}},
		{Name: "b", Clusters: []protocol.Cluster{{Name: "b",
			Nodes:    []protocol.Node{{Name: "b1"}, {Name: "b2"}},
			Switches: []protocol.Switch{{Name: "ipower", Kind: "power", Driver: "iboot", Node: "b1", Outlets: []protocol.Outlet{{Name: "1", Node: "b2"}}}}}}},
	}}
}

func TestResolveOutlet(t *testing.T) {
	tests := []struct {
		arg                  string
		owner, switch_, want string
		code                 protocol.Code
	}{
		{arg: "b2", owner: "b1", switch_: "ipower", want: "1"},
		{arg: "ipower", owner: "b1", switch_: "ipower", want: "1"},
		{arg: "ipower/1", owner: "b1", switch_: "ipower", want: "1"},
		{arg: "a1", owner: "a2", switch_: "bero-power", want: "0"},
		{arg: "bero-power/1", owner: "a2", switch_: "bero-power", want: "1"},
		{arg: "0", owner: "a2", switch_: "bero-power", want: "0"},
		{arg: "1", code: protocol.CodeUsage},              // two switches have an outlet 1
		{arg: "bero-power", code: protocol.CodeUsage},     // two outlets
		{arg: "lines-a/0", code: protocol.CodeUsage},      // not a power switch
		{arg: "ipower/2", code: protocol.CodeUsage},       // no such outlet
		{arg: "nosuch", code: protocol.CodeUsage},         // nothing
		{arg: "", code: protocol.CodeUsage},               // nothing
		{arg: "/", code: protocol.CodeUsage},              // nothing
		{arg: "ipower/1/extra", code: protocol.CodeUsage}, // no outlet "1/extra"
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			got, err := lines.ResolveOutlet(deployment(), tt.arg)
			if tt.code != "" {
				if protocol.CodeOf(err) != tt.code {
					t.Fatalf("ResolveOutlet(%q) = %+v, %v; want a %s error", tt.arg, got, err, tt.code)
				}
				return
			}
			if err != nil || got.Owner != tt.owner || got.Switch != tt.switch_ || got.Outlet != tt.want {
				t.Fatalf("ResolveOutlet(%q) = %+v, %v; want %s/%s driven by %s", tt.arg, got, err, tt.switch_, tt.want, tt.owner)
			}
		})
	}
}

func TestRouteSwitch(t *testing.T) {
	tests := []struct {
		args []string
		want string
		code protocol.Code
	}{
		{args: []string{"lines-a", "a2"}, want: "a1"},
		{args: []string{"ipower", "on"}, code: protocol.CodeUsage}, // a power switch
		{args: []string{"nosuch", "a1"}, code: protocol.CodeUsage},
		{args: []string{"lines-a"}, code: protocol.CodeUsage},
	}
	for _, tt := range tests {
		got, err := lines.RouteSwitch(deployment(), protocol.Action{Verb: "switch set", Args: tt.args})
		if tt.code != "" {
			if protocol.CodeOf(err) != tt.code {
				t.Errorf("RouteSwitch(%q) = %q, %v; want a %s error", tt.args, got, err, tt.code)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("RouteSwitch(%q) = %q, %v; want %q", tt.args, got, err, tt.want)
		}
	}
}

// FuzzResolveOutlet checks that no OUTLET word makes resolution panic,
// and that whatever it resolves names an outlet that exists.
func FuzzResolveOutlet(f *testing.F) {
	for _, s := range []string{"b2", "ipower/1", "bero-power", "1", "/", "a/b/c", "", "ipower/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		snap := deployment()
		got, err := lines.ResolveOutlet(snap, arg)
		if err != nil {
			if protocol.CodeOf(err) != protocol.CodeUsage {
				t.Fatalf("ResolveOutlet(%q): %v is not a usage error", arg, err)
			}
			return
		}
		for _, l := range lines.Switches(snap) {
			for _, o := range l.Switch.Outlets {
				if l.Switch.Name == got.Switch && o.Name == got.Outlet && l.Owner == got.Owner {
					return
				}
			}
		}
		t.Fatalf("ResolveOutlet(%q) = %+v, which is not an outlet of the deployment", arg, got)
	})
}
