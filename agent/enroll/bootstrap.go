package enroll

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hatui/hatui/agent/config"
)

// JoinPort is the first node's join listener port.
const JoinPort = 7945

// BootstrapOptions say how to create a deployment from a recipe.
type BootstrapOptions struct {
	// Recipe is the recipe's folder.
	Recipe string
	// Addrs replace the recipe's example addresses, by node name.
	Addrs map[string]string
	// Paths are the first node's; each joining node uses its own.
	Paths Paths
	// TTL is how long the tokens are valid (DefaultTTL when 0).
	TTL time.Duration
	// Force overwrites an existing configuration.
	Force bool
}

// Invite is one node's join token.
type Invite struct {
	Node, Role, Addr string
	Token            Token
}

// Bootstrapped is what bootstrap made.
type Bootstrapped struct {
	Recipe *Recipe
	// Node is the first node, whose configuration is ConfigFile.
	Node       string
	ConfigFile string
	Invites    []Invite
	Expires    time.Time
}

// Bootstrap creates a deployment on its first node: the gossip key, the
// node's configuration, and a token for every other node of the recipe.
func Bootstrap(o BootstrapOptions) (*Bootstrapped, error) {
	r, err := LoadRecipe(o.Recipe)
	if err != nil {
		return nil, err
	}
	addrs, err := r.Addrs(o.Addrs)
	if err != nil {
		return nil, err
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	templates := map[string]string{}
	for _, n := range r.Nodes {
		b, err := os.ReadFile(filepath.Join(r.Dir, n.Config))
		if err != nil {
			return nil, fmt.Errorf("recipe %s: %w", r.Name, err)
		}
		templates[n.Name] = string(b)
		// Every node's file must render and be valid now, not when
		// that node joins.
		text, err := Render(n.Name, string(b), addrs, r.Device, o.Paths)
		if err != nil {
			return nil, err
		}
		if _, err := config.Parse(n.Config, []byte(text)); err != nil {
			return nil, fmt.Errorf("recipe %s: %w", r.Name, err)
		}
	}
	files := map[string]File{}
	for _, f := range r.Files {
		path := filepath.Join(r.Dir, f)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("recipe %s: %w", r.Name, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("recipe %s: %w", r.Name, err)
		}
		files[f] = File{Text: string(b), Exec: fi.Mode().Perm()&0o100 != 0}
	}
	first := r.First()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("making the gossip key: %w", err)
	}
	g := Grant{Recipe: r.Name, Node: first.Name, Template: templates[first.Name], Addrs: addrs,
		Keys: base64.StdEncoding.EncodeToString(k) + "\n", Devices: r.Device, Files: files}
	cfgFile, err := install(g, o.Paths, o.Force)
	if err != nil {
		return nil, err
	}
	listen := net.JoinHostPort(addrs[first.Name], strconv.Itoa(JoinPort))
	s, err := CreateStore(filepath.Join(o.Paths.State, StoreFile), listen, g, templates)
	if err != nil {
		return nil, err
	}
	out := &Bootstrapped{Recipe: r, Node: first.Name, ConfigFile: cfgFile, Expires: time.Now().Add(o.TTL)}
	for _, n := range r.Nodes {
		if n.Name == first.Name {
			continue
		}
		t, err := s.Issue(n.Name, o.TTL)
		if err != nil {
			return nil, err
		}
		out.Invites = append(out.Invites, Invite{Node: n.Name, Role: n.Role, Addr: addrs[n.Name], Token: t})
	}
	return out, nil
}

// IssueAgain makes a new token for node from the first node's store.
func IssueAgain(state, node string, ttl time.Duration) (Token, error) {
	s, err := OpenStore(filepath.Join(state, StoreFile))
	if err != nil {
		return Token{}, fmt.Errorf("this is not the node the deployment was bootstrapped on: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return s.Issue(node, ttl)
}

// Join redeems a token and writes the node's configuration and key file
// under p; it returns the grant and the configuration file's path.
func Join(ctx context.Context, token string, p Paths, force bool) (Grant, string, error) {
	t, err := ParseToken(token)
	if err != nil {
		return Grant{}, "", err
	}
	if !force {
		if err := refuseExisting(p); err != nil {
			return Grant{}, "", err
		}
	}
	g, err := Redeem(ctx, t)
	if err != nil {
		return Grant{}, "", err
	}
	file, err := install(g, p, true)
	return g, file, err
}

func refuseExisting(p Paths) error {
	file := filepath.Join(p.Etc, "ha-agent.toml")
	if _, err := os.Stat(file); err == nil {
		return fmt.Errorf("%s exists: this node is configured already (--force replaces it)", file)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// install renders and checks a node's configuration and writes it with
// the key file.
func install(g Grant, p Paths, force bool) (string, error) {
	if !force {
		if err := refuseExisting(p); err != nil {
			return "", err
		}
	}
	text, err := Render(g.Node, g.Template, g.Addrs, g.Devices, p)
	if err != nil {
		return "", err
	}
	rendered := map[string]string{}
	for name, f := range g.Files {
		if filepath.Base(name) != name {
			return "", fmt.Errorf("recipe file %q is not a plain file name", name)
		}
		if rendered[name], err = Render(g.Node, f.Text, g.Addrs, g.Devices, p); err != nil {
			return "", err
		}
	}
	file := filepath.Join(p.Etc, "ha-agent.toml")
	if _, err := config.Parse(file, []byte(text)); err != nil {
		return "", err
	}
	for _, d := range []string{p.Etc, p.State, p.Run} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return "", fmt.Errorf("creating %s: %w", d, err)
		}
	}
	for name, t := range rendered {
		mode := os.FileMode(0o640)
		if g.Files[name].Exec {
			mode = 0o750
		}
		if err := os.WriteFile(filepath.Join(p.Etc, name), []byte(t), mode); err != nil {
			return "", fmt.Errorf("writing %s: %w", name, err)
		}
		if err := os.Chmod(filepath.Join(p.Etc, name), mode); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(p.Etc, "gossip.keys"), []byte(g.Keys), 0o600); err != nil {
		return "", fmt.Errorf("writing the key file: %w", err)
	}
	if err := os.WriteFile(file, []byte(text), 0o640); err != nil {
		return "", fmt.Errorf("writing the configuration: %w", err)
	}
	return file, nil
}
