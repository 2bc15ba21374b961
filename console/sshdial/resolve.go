package sshdial

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults applied when neither Options nor ssh_config say otherwise.
const (
	DefaultSocketPath        = "/run/ha-agent/ha-agent.sock"
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveCountMax = 3
	DefaultConnectTimeout    = 15 * time.Second
)

// maxHops bounds a ProxyJump chain; jump hosts' own ProxyJump settings
// could otherwise loop.
const maxHops = 8

// AskFunc decides whether to trust the key of a host that known_hosts does
// not know. host names the host as known_hosts will ("pbx-a1", or
// "[10.1.1.1]:2222" with the alias in front when it differs). Returning
// true accepts the key for this and later connections (it is appended to
// known_hosts); false refuses the connection.
type AskFunc func(host string, key ssh.PublicKey) (bool, error)

// Options configure a Dialer. The zero value reads ~/.ssh/config and
// /etc/ssh/ssh_config, uses $SSH_AUTH_SOCK and the default key files, and
// refuses unknown hosts.
type Options struct {
	// SocketPath is the agent's socket on the node; default
	// DefaultSocketPath.
	SocketPath string

	// Config, when set, is used instead of reading ConfigFiles.
	Config *Config
	// ConfigFiles are the ssh_config files to read in order when Config is
	// nil. nil means ~/.ssh/config then /etc/ssh/ssh_config; an empty
	// non-nil slice reads none.
	ConfigFiles []string

	// AskUnknown is asked about hosts known_hosts does not know (when
	// StrictHostKeyChecking is ask, the default). nil refuses them: that
	// is what --exec wants, where nobody can answer. Time spent answering
	// does not count against ConnectTimeout, but does against the Dial
	// context's deadline. See TerminalAsk.
	AskUnknown AskFunc
	// Passphrase, when set, is asked for the passphrase of an encrypted key
	// file that the server accepts and no ssh-agent holds. nil means such
	// keys fail with a message telling the operator to ssh-add them.
	Passphrase func(path string) ([]byte, error)

	// AgentSocket overrides $SSH_AUTH_SOCK and IdentityAgent; "none"
	// disables the ssh-agent.
	AgentSocket string
	// IdentityFiles are tried before those from ssh_config, at every hop,
	// like ssh -i.
	IdentityFiles []string
	// KnownHostsFiles, when non-nil, replace every known_hosts file (user
	// and global) for every hop; the first one is where accepted keys are
	// written.
	KnownHostsFiles []string
	// ProxyJump overrides the target's ProxyJump setting, like ssh -J.
	ProxyJump string

	// ConnectTimeout bounds the TCP connection and SSH login at each hop
	// (ssh_config ConnectTimeout, else DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// KeepaliveInterval overrides ServerAliveInterval: a
	// keepalive@openssh.com request is sent this often and the connection
	// is closed after KeepaliveCountMax go unanswered, so a dead node is
	// noticed. Negative disables keepalives. Default
	// DefaultKeepaliveInterval when ssh_config does not set it.
	KeepaliveInterval time.Duration
	// KeepaliveCountMax overrides ServerAliveCountMax (default
	// DefaultKeepaliveCountMax).
	KeepaliveCountMax int

	// Home and LocalUser stand for the console user's home directory and
	// login name (for ~, %d, %u and the default user); default from the
	// operating system.
	Home      string
	LocalUser string
	// Getenv reads environment variables (SSH_AUTH_SOCK); default
	// os.Getenv.
	Getenv func(string) string

	// NoDiagnose stops the short, read-only shell command otherwise run on
	// the node after sshd refuses to open the agent socket. sshd reports a
	// missing socket, a permission problem and disabled forwarding all the
	// same way; the command tells them apart so the error can say which.
	NoDiagnose bool

	// Logf, when set, receives debug messages (keys tried, keys skipped).
	Logf func(format string, args ...any)
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

func (o *Options) getenv(k string) string {
	if o.Getenv != nil {
		return o.Getenv(k)
	}
	return os.Getenv(k)
}

// withDefaults fills in what the zero Options leave to the system.
func (o Options) withDefaults() (Options, error) {
	if o.SocketPath == "" {
		o.SocketPath = DefaultSocketPath
	}
	if o.Home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return o, &Error{Kind: KindConfig, Msg: "finding your home directory", Err: err, Hint: "set HOME"}
		}
		o.Home = h
	}
	if o.LocalUser == "" {
		o.LocalUser = currentUser()
	}
	if o.Config == nil {
		files := o.ConfigFiles
		if files == nil {
			files = []string{filepath.Join(o.Home, ".ssh", "config"), "/etc/ssh/ssh_config"}
		}
		c, err := LoadConfig(files...)
		if err != nil {
			return o, &Error{Kind: KindConfig, Msg: "reading ssh config", Err: err, Hint: "fix the line named (hatui reads the same files as ssh)"}
		}
		o.Config = c
	}
	return o, nil
}

// Hop is one SSH connection on the way to the agent: the jump hosts in
// order, then the node. Every field is resolved: tokens expanded,
// defaults applied.
type Hop struct {
	Alias    string // the name looked up in ssh_config
	HostName string // what is connected to
	Port     int
	User     string

	IdentityFiles  []string // key files to try, in order
	IdentitiesOnly bool     // only agent keys matching IdentityFiles
	IdentityAgent  string   // ssh-agent socket; "" for none

	KnownHostsFiles       []string // user files first; accepted keys go to the first
	GlobalKnownHostsFiles []string
	StrictHostKeyChecking string // a Strict* constant
	HashKnownHosts        bool

	ConnectTimeout    time.Duration
	KeepaliveInterval time.Duration // 0: off
	KeepaliveCountMax int

	// Warnings from ssh_config about this host.
	Warnings []string
}

// Addr is HostName:Port for dialing and for known_hosts.
func (h Hop) Addr() string { return hostPort(h.HostName, h.Port) }

// String names the hop for messages: "alias (user@host:port)".
func (h Hop) String() string {
	s := h.User + "@" + h.Addr()
	if h.Alias != "" && h.Alias != h.HostName {
		return h.Alias + " (" + s + ")"
	}
	return s
}

// Resolve turns a [user@]host[:port] target into the hops that reach it,
// applying ssh_config and opts as ssh would: command line (the target and
// opts) first, then the config files, then defaults. It does no network
// I/O.
func Resolve(target string, opts Options) ([]Hop, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	t, err := ParseTarget(target)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Msg: "reading the target", Err: err}
	}
	var override *string
	if o.ProxyJump != "" {
		override = &o.ProxyJump
	}
	return resolveChain(&o, t, override, 0)
}

func resolveChain(o *Options, t Target, jumpsOverride *string, depth int) ([]Hop, error) {
	if depth >= maxHops {
		return nil, &Error{Kind: KindConfig, Host: t.String(),
			Msg:  fmt.Sprintf("ProxyJump chain longer than %d hops", maxHops),
			Hint: "check ~/.ssh/config for jump hosts that name each other in ProxyJump"}
	}
	hc := o.Config.lookup(t.Host, t.User, o.LocalUser)
	hop, err := makeHop(o, t, hc)
	if err != nil {
		return nil, err
	}
	jumps := hc.ProxyJump
	if jumpsOverride != nil {
		jumps = *jumpsOverride
	} else if hc.ProxyCommand != "" && !strings.EqualFold(hc.ProxyCommand, "none") {
		return nil, &Error{Kind: KindConfig, Host: hop.String(),
			Msg:  fmt.Sprintf("ssh_config sets ProxyCommand %q, which hatui does not run", hc.ProxyCommand),
			Hint: "use ProxyJump host instead (ProxyCommand ssh -W %h:%p host is the same as ProxyJump host)"}
	}
	list, err := parseJumps(jumps)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Host: hop.String(), Msg: "reading ProxyJump", Err: err}
	}
	if len(list) == 0 {
		return []Hop{hop}, nil
	}
	// As ssh does: the last jump is reached through the ones before it; the
	// first jump's own ssh_config ProxyJump applies.
	last := list[len(list)-1]
	var before []Hop
	if len(list) == 1 {
		before, err = resolveChain(o, last, nil, depth+1)
	} else {
		parts := make([]string, len(list)-1)
		for i, j := range list[:len(list)-1] {
			parts[i] = j.String()
		}
		rest := strings.Join(parts, ",")
		before, err = resolveChain(o, last, &rest, depth+1)
	}
	if err != nil {
		return nil, err
	}
	if len(before)+1 > maxHops {
		return nil, &Error{Kind: KindConfig, Host: hop.String(),
			Msg:  fmt.Sprintf("ProxyJump chain longer than %d hops", maxHops),
			Hint: "check ~/.ssh/config for jump hosts that name each other in ProxyJump"}
	}
	return append(before, hop), nil
}

func makeHop(o *Options, t Target, hc *HostConfig) (Hop, error) {
	h := Hop{Alias: t.Host, Warnings: hc.Warnings}
	h.HostName = t.Host
	if hc.HostName != "" {
		h.HostName = expandHostName(hc.HostName, t.Host)
	}
	switch {
	case t.Port != 0:
		h.Port = t.Port
	case hc.Port != 0:
		h.Port = hc.Port
	default:
		h.Port = 22
	}
	switch {
	case t.User != "":
		h.User = t.User
	case hc.User != "":
		h.User = hc.User
	default:
		h.User = o.LocalUser
	}
	hostname, _ := os.Hostname()
	short, _, _ := strings.Cut(hostname, ".")
	tokens := map[byte]string{
		'd': o.Home,
		'h': h.HostName,
		'i': strconv.Itoa(os.Getuid()),
		'k': h.HostName,
		'L': short,
		'l': hostname,
		'n': t.Host,
		'p': strconv.Itoa(h.Port),
		'r': h.User,
		'u': o.LocalUser,
	}
	bad := func(err error) (Hop, error) {
		return Hop{}, &Error{Kind: KindConfig, Host: h.String(), Msg: "reading ssh config", Err: err}
	}
	expandAll := func(kw string, in []string) ([]string, error) {
		var out []string
		for _, f := range in {
			if strings.EqualFold(f, "none") {
				continue
			}
			p, err := expandTokens(kw, f, tokens, o.Home)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}

	ids := append(append([]string(nil), o.IdentityFiles...), hc.IdentityFiles...)
	if len(ids) == 0 {
		// As ssh: the default keys only when none is named.
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			ids = append(ids, filepath.Join(o.Home, ".ssh", n))
		}
	}
	var err error
	if h.IdentityFiles, err = expandAll("IdentityFile", ids); err != nil {
		return bad(err)
	}
	h.IdentitiesOnly = hc.IdentitiesOnly

	agentSock := o.AgentSocket
	if agentSock == "" {
		agentSock = hc.IdentityAgent
	}
	switch {
	case agentSock == "" || agentSock == "SSH_AUTH_SOCK":
		h.IdentityAgent = o.getenv("SSH_AUTH_SOCK")
	case strings.EqualFold(agentSock, "none"):
		h.IdentityAgent = ""
	case strings.HasPrefix(agentSock, "$"):
		h.IdentityAgent = o.getenv(agentSock[1:])
	default:
		p, err := expandTokens("IdentityAgent", agentSock, tokens, o.Home)
		if err != nil {
			return bad(err)
		}
		h.IdentityAgent = p
	}

	if o.KnownHostsFiles != nil {
		h.KnownHostsFiles = append([]string(nil), o.KnownHostsFiles...)
	} else {
		user := hc.UserKnownHostsFiles
		if user == nil {
			user = []string{"~/.ssh/known_hosts", "~/.ssh/known_hosts2"}
		}
		if h.KnownHostsFiles, err = expandAll("UserKnownHostsFile", user); err != nil {
			return bad(err)
		}
		global := hc.GlobalKnownHostsFiles
		if global == nil {
			global = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
		}
		if h.GlobalKnownHostsFiles, err = expandAll("GlobalKnownHostsFile", global); err != nil {
			return bad(err)
		}
	}
	h.StrictHostKeyChecking = StrictAsk
	if hc.StrictHostKeyChecking != "" {
		h.StrictHostKeyChecking = hc.StrictHostKeyChecking
	}
	h.HashKnownHosts = hc.HashKnownHosts

	switch {
	case o.ConnectTimeout > 0:
		h.ConnectTimeout = o.ConnectTimeout
	case hc.ConnectTimeout > 0:
		h.ConnectTimeout = hc.ConnectTimeout
	default:
		h.ConnectTimeout = DefaultConnectTimeout
	}
	switch {
	case o.KeepaliveInterval < 0:
		h.KeepaliveInterval = 0
	case o.KeepaliveInterval > 0:
		h.KeepaliveInterval = o.KeepaliveInterval
	case hc.Has("ServerAliveInterval"):
		h.KeepaliveInterval = hc.ServerAliveInterval
	default:
		h.KeepaliveInterval = DefaultKeepaliveInterval
	}
	switch {
	case o.KeepaliveCountMax > 0:
		h.KeepaliveCountMax = o.KeepaliveCountMax
	case hc.Has("ServerAliveCountMax"):
		h.KeepaliveCountMax = max(hc.ServerAliveCountMax, 1)
	default:
		h.KeepaliveCountMax = DefaultKeepaliveCountMax
	}
	return h, nil
}
