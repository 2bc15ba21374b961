package enroll

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"text/template"

	"github.com/BurntSushi/toml"
)

// Recipe is a deployment's plan: its nodes, their roles and the template
// of each node's configuration (recipes/NAME/recipe.toml).
type Recipe struct {
	Name string `toml:"name"`
	// Seed names the source document the recipe comes from.
	Seed        string `toml:"seed"`
	Description string `toml:"description"`
	Nodes       []Node `toml:"node"`
	// Address names addresses that are no node's, such as a shared IP:
	// {{addr "vip"}}; bootstrap's --addr replaces them as well.
	Address map[string]string `toml:"address"`
	// Device names hardware (serial ports, watchdogs) with its default
	// path: {{dev "ttyS1"}}; each node's --dev replaces it.
	Device map[string]string `toml:"device"`
	// Files are further templates in the folder (resource scripts, a SIP
	// server's configuration) every node gets in its configuration
	// folder, rendered like its configuration; executable ones stay so.
	Files []string `toml:"files"`
	// Dir is the folder the recipe was read from.
	Dir string `toml:"-"`
}

// Node is one node of a recipe.
type Node struct {
	Name string `toml:"name"`
	// Role is what the node is in the recipe: "pbx", "witness",
	// "arbitrator"...
	Role string `toml:"role"`
	// Addr is the node's example address; bootstrap's --addr replaces it.
	Addr string `toml:"addr"`
	// Config is the node's configuration template, relative to the
	// recipe's folder.
	Config string `toml:"config"`
	// Bootstrap marks the node bootstrap runs on (the first node when
	// none is marked).
	Bootstrap bool `toml:"bootstrap"`
}

// LoadRecipe reads dir/recipe.toml and checks that every node's template
// exists.
func LoadRecipe(dir string) (*Recipe, error) {
	file := filepath.Join(dir, "recipe.toml")
	var r Recipe
	if _, err := toml.DecodeFile(file, &r); err != nil {
		return nil, fmt.Errorf("reading recipe %s: %w", file, err)
	}
	r.Dir = dir
	if r.Name == "" || len(r.Nodes) == 0 {
		return nil, fmt.Errorf("recipe %s: needs a name and at least one [[node]]", file)
	}
	seen := map[string]bool{}
	for _, n := range r.Nodes {
		if n.Name == "" || n.Config == "" {
			return nil, fmt.Errorf("recipe %s: every [[node]] needs name and config", file)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("recipe %s: node %q is listed twice", file, n.Name)
		}
		seen[n.Name] = true
		if _, err := netip.ParseAddr(n.Addr); err != nil {
			return nil, fmt.Errorf("recipe %s: node %s: addr %q is not an IP address", file, n.Name, n.Addr)
		}
		if _, err := os.Stat(filepath.Join(dir, n.Config)); err != nil {
			return nil, fmt.Errorf("recipe %s: node %s: %w", file, n.Name, err)
		}
	}
	for k, a := range r.Address {
		if seen[k] {
			return nil, fmt.Errorf("recipe %s: address %q is also a node's name", file, k)
		}
		if _, err := netip.ParseAddr(a); err != nil {
			return nil, fmt.Errorf("recipe %s: address %s = %q is not an IP address", file, k, a)
		}
	}
	for _, f := range r.Files {
		if filepath.Base(f) != f {
			return nil, fmt.Errorf("recipe %s: files: %q must be a file of the recipe's folder", file, f)
		}
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("recipe %s: %w", file, err)
		}
	}
	return &r, nil
}

// First is the node bootstrap runs on.
func (r *Recipe) First() Node {
	for _, n := range r.Nodes {
		if n.Bootstrap {
			return n
		}
	}
	return r.Nodes[0]
}

// Node finds a node by name.
func (r *Recipe) Node(name string) (Node, bool) {
	for _, n := range r.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Addrs are the recipe's example addresses with overrides applied; an
// override for a node the recipe lacks is an error.
func (r *Recipe) Addrs(over map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for k, a := range r.Address {
		out[k] = a
	}
	for _, n := range r.Nodes {
		out[n.Name] = n.Addr
	}
	names := make([]string, 0, len(over))
	for k := range over {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("--addr %s=%s: recipe %s has no node or address %q", k, over[k], r.Name, k)
		}
		if _, err := netip.ParseAddr(over[k]); err != nil {
			return nil, fmt.Errorf("--addr %s=%s: not an IP address", k, over[k])
		}
		out[k] = over[k]
	}
	return out, nil
}

// Paths are where a node keeps its files; the template refers to them.
type Paths struct {
	Etc   string // configuration and key file (/etc/ha-agent)
	State string // state directory (/var/lib/ha-agent)
	Run   string // socket directory (/run/ha-agent)
	// Devices replace the recipe's default device paths, by name.
	Devices map[string]string
}

// DefaultPaths are a production node's paths.
func DefaultPaths() Paths {
	return Paths{Etc: "/etc/ha-agent", State: "/var/lib/ha-agent", Run: "/run/ha-agent"}
}

// Render fills a node's configuration template: {{addr "NODE"}} is a
// node's (or a named) address, {{dev "NAME"}} a device's path, {{.Node}},
// {{.Etc}}, {{.State}}, {{.Run}} and {{.KeyFile}} are this node's name and
// paths.
func Render(name, tmpl string, addrs, devices map[string]string, p Paths) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"addr": func(node string) (string, error) {
			a, ok := addrs[node]
			if !ok {
				return "", fmt.Errorf("no node or address %q in the recipe", node)
			}
			return a, nil
		},
		"dev": func(d string) (string, error) {
			if v, ok := p.Devices[d]; ok {
				return v, nil
			}
			if v, ok := devices[d]; ok {
				return v, nil
			}
			return "", fmt.Errorf("no device %q in the recipe", d)
		},
	}).Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("template of %s: %w", name, err)
	}
	var b bytes.Buffer
	err = t.Execute(&b, map[string]string{
		"Node": name, "Etc": p.Etc, "State": p.State, "Run": p.Run,
		"KeyFile": filepath.Join(p.Etc, "gossip.keys"),
	})
	if err != nil {
		return "", fmt.Errorf("rendering the configuration of %s: %w", name, err)
	}
	return b.String(), nil
}
