package sshdial

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// acceptedKeys remembers host keys accepted during this run, so a redial
// does not ask again even when known_hosts could not be written.
type acceptedKeys struct {
	mu   sync.Mutex
	keys map[string][][]byte // known_hosts name -> marshalled keys
}

func (a *acceptedKeys) add(name string, key ssh.PublicKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys == nil {
		a.keys = map[string][][]byte{}
	}
	a.keys[name] = append(a.keys[name], key.Marshal())
}

func (a *acceptedKeys) has(name string, key ssh.PublicKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := key.Marshal()
	return slices.ContainsFunc(a.keys[name], func(b []byte) bool { return string(b) == string(m) })
}

// hostKeyCheck verifies one hop's host key against known_hosts. It keeps
// the typed refusal, because x/crypto reports the callback's error inside
// its own handshake error.
type hostKeyCheck struct {
	hop      Hop
	via      string // ProxyJump list that reached this hop, for the hint
	ask      AskFunc
	accepted *acceptedKeys
	logf     func(string, ...any)

	db       ssh.HostKeyCallback
	known    []knownhosts.KnownKey // entries for this host, from algorithms
	refusal  *Error
	verified bool
}

// newHostKeyCheck reads the hop's known_hosts files (those that exist).
func newHostKeyCheck(hop Hop, via string, ask AskFunc, acc *acceptedKeys, logf func(string, ...any)) (*hostKeyCheck, error) {
	var files []string
	for _, f := range append(slices.Clone(hop.KnownHostsFiles), hop.GlobalKnownHostsFiles...) {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Kind: KindConfig, Host: hop.String(), Msg: "reading known_hosts", Err: err}
		}
	}
	h := &hostKeyCheck{hop: hop, via: via, ask: ask, accepted: acc, logf: logf}
	if len(files) == 0 {
		h.db = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
		return h, nil
	}
	db, err := knownhosts.New(files...)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Host: hop.String(), Msg: "reading known_hosts", Err: err,
			Hint: "fix or delete the line named (ssh-keygen -R host -f file removes a host's lines)"}
	}
	h.db = db
	return h, nil
}

// name is how known_hosts names the hop: "host" or "[host]:port".
func (h *hostKeyCheck) name() string { return knownhosts.Normalize(h.hop.Addr()) }

func (h *hostKeyCheck) display() string {
	n := h.name()
	if h.hop.Alias != "" && h.hop.Alias != h.hop.HostName {
		return h.hop.Alias + " (" + n + ")"
	}
	return n
}

// algorithms lists the host key algorithms to ask for: those of the keys
// known_hosts already holds for the host, so that a server with several
// host keys presents the one we can check (ssh does the same). nil means
// no preference.
func (h *hostKeyCheck) algorithms() []string {
	// A key no known_hosts file holds, to make the database list the keys
	// it has for this host.
	probe, _ := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	var ke *knownhosts.KeyError
	if err := h.db(h.hop.Addr(), &net.TCPAddr{}, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	h.known = ke.Want
	var algos []string
	for _, k := range ke.Want {
		var add []string
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		default:
			add = []string{t}
		}
		for _, a := range add {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func (h *hostKeyCheck) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := h.check(hostname, remote, key)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			h.refusal = e
		}
		return err
	}
	h.verified = true
	return nil
}

func (h *hostKeyCheck) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	name := h.name()
	if h.accepted.has(name, key) {
		return nil
	}
	err := h.db(hostname, remote, key)
	if err == nil {
		return nil
	}
	var revoked *knownhosts.RevokedError
	if errors.As(err, &revoked) {
		return &Error{Kind: KindHostKeyChanged, Host: h.hop.String(), Key: key,
			Known: []knownhosts.KnownKey{revoked.Revoked},
			Msg:   fmt.Sprintf("the node offered host key %s, which %s marks @revoked", describeKey(key), revoked.Revoked.Filename+fmt.Sprintf(":%d", revoked.Revoked.Line)),
			Hint:  "do not connect: ask the node's administrator why the node presents a revoked key"}
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		// A certificate the CA lines reject, or a malformed address.
		return &Error{Kind: KindHostKeyChanged, Host: h.hop.String(), Key: key, Msg: "host key rejected", Err: err,
			Hint: "check the host's certificate and the @cert-authority lines in known_hosts"}
	}
	if len(ke.Want) > 0 {
		return h.changed(key, ke.Want)
	}
	return h.unknown(key)
}

func (h *hostKeyCheck) changed(key ssh.PublicKey, want []knownhosts.KnownKey) *Error {
	var where []string
	for _, k := range want {
		where = append(where, fmt.Sprintf("%s:%d (%s)", k.Filename, k.Line, describeKey(k.Key)))
	}
	first := want[0]
	return &Error{Kind: KindHostKeyChanged, Host: h.hop.String(), Key: key, Known: want,
		Msg: fmt.Sprintf("REFUSED: the host key has CHANGED: the node now offers %s but known_hosts has %s",
			describeKey(key), strings.Join(where, ", ")),
		Hint: fmt.Sprintf("this may be a man-in-the-middle attack, or the node was reinstalled or had its keys regenerated: "+
			"check the new fingerprint with the node's administrator (on the node: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub); "+
			"only if it matches, remove the old entry with: ssh-keygen -R '%s' -f %s (line %d) and connect again",
			keyFileType(key), h.name(), first.Filename, first.Line)}
}

func (h *hostKeyCheck) unknown(key ssh.PublicKey) error {
	policy := h.hop.StrictHostKeyChecking
	refuse := func(msg, hint string) *Error {
		return &Error{Kind: KindHostKeyUnknown, Host: h.hop.String(), Key: key, Msg: msg, Hint: hint}
	}
	sshCmd := "ssh "
	if h.via != "" {
		sshCmd += "-J " + h.via + " "
	}
	if h.hop.Port != 22 {
		sshCmd += fmt.Sprintf("-p %d ", h.hop.Port)
	}
	sshCmd += h.hop.User + "@" + h.hop.Alias
	addHint := fmt.Sprintf("run `%s` once in a terminal and accept the key after checking its fingerprint with the node's administrator, "+
		"or add the node's key to %s", sshCmd, h.writeFile())
	switch policy {
	case StrictYes:
		return refuse(fmt.Sprintf("the host is not in known_hosts (it offered %s) and StrictHostKeyChecking is yes", describeKey(key)), addHint)
	case StrictAcceptNew, StrictNo:
		h.logf("sshdial: adding new host %s key %s to known_hosts (StrictHostKeyChecking %s)", h.display(), describeKey(key), policy)
	default: // ask
		if h.ask == nil {
			return refuse(fmt.Sprintf("the host is not in known_hosts (it offered %s) and nobody can be asked to accept it", describeKey(key)), addHint)
		}
		ok, err := h.ask(h.display(), key)
		if err != nil {
			return &Error{Kind: KindHostKeyUnknown, Host: h.hop.String(), Key: key, Msg: "asking whether to accept the host key", Err: err}
		}
		if !ok {
			return refuse(fmt.Sprintf("host key %s not accepted", describeKey(key)), "")
		}
	}
	h.accepted.add(h.name(), key)
	if f := h.writeFile(); f != "" {
		if err := appendKnownHost(f, h.hop.HashKnownHosts, h.name(), key); err != nil {
			// The key is trusted for this run anyway; ssh also carries on.
			h.logf("sshdial: could not add %s to %s: %v", h.name(), f, err)
		}
	}
	return nil
}

// writeFile is where accepted keys go: the first user known_hosts file.
func (h *hostKeyCheck) writeFile() string {
	if len(h.hop.KnownHostsFiles) == 0 {
		return ""
	}
	return h.hop.KnownHostsFiles[0]
}

// appendKnownHost adds a line for key under name to file, creating it and
// its directory (0700) when needed. With hashed, the name is hashed as
// HashKnownHosts does.
func appendKnownHost(file string, hashed bool, name string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if hashed {
		name = knownhosts.HashHostname(name)
	}
	line := knownhosts.Line([]string{name}, key) + "\n"
	// Do not glue our line onto a last line that lacks its newline.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return err
	}
	return f.Close()
}

// describeKey gives a key as ssh shows it: "ED25519 SHA256:...".
func describeKey(k ssh.PublicKey) string {
	return keyTypeName(k) + " " + ssh.FingerprintSHA256(k)
}

func keyTypeName(k ssh.PublicKey) string {
	t := k.Type()
	switch {
	case strings.HasPrefix(t, "ssh-rsa"), strings.HasPrefix(t, "rsa-"):
		return "RSA"
	case strings.HasPrefix(t, "ecdsa-"):
		return "ECDSA"
	case strings.HasPrefix(t, "ssh-ed25519"):
		return "ED25519"
	case strings.HasPrefix(t, "sk-ecdsa"):
		return "ECDSA-SK"
	case strings.HasPrefix(t, "sk-ssh-ed25519"):
		return "ED25519-SK"
	}
	return strings.ToUpper(strings.TrimPrefix(t, "ssh-"))
}

// keyFileType is the name sshd gives the host key file of k's type.
func keyFileType(k ssh.PublicKey) string {
	switch keyTypeName(k) {
	case "RSA":
		return "rsa"
	case "ECDSA":
		return "ecdsa"
	}
	return "ed25519"
}

// UnknownHostPrompt is the question ssh asks about an unknown host; a
// console's AskFunc can show it.
func UnknownHostPrompt(host string, key ssh.PublicKey) string {
	return fmt.Sprintf("The authenticity of host '%s' can't be established.\n%s key fingerprint is %s.\n"+
		"This key is not known by any other names.\n"+
		"Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
		host, keyTypeName(key), ssh.FingerprintSHA256(key))
}

// TerminalAsk returns an AskFunc that asks on a terminal as ssh does:
// it writes UnknownHostPrompt to out and reads answers from in until it
// gets yes, no or the key's fingerprint (accepted as yes). End of input
// is no.
func TerminalAsk(in io.Reader, out io.Writer) AskFunc {
	r := bufio.NewReader(in)
	return func(host string, key ssh.PublicKey) (bool, error) {
		if _, err := io.WriteString(out, UnknownHostPrompt(host, key)); err != nil {
			return false, err
		}
		for {
			line, err := r.ReadString('\n')
			answer := strings.TrimSpace(line)
			switch strings.ToLower(answer) {
			case "yes", "y":
				return true, nil
			case "no", "n":
				return false, nil
			}
			if answer == ssh.FingerprintSHA256(key) {
				return true, nil
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					return false, nil
				}
				return false, err
			}
			if answer != "" {
				if _, err := io.WriteString(out, "Please type 'yes', 'no' or the fingerprint: "); err != nil {
					return false, err
				}
			} else if _, err := io.WriteString(out, "Please type 'yes' or 'no': "); err != nil {
				return false, err
			}
		}
	}
}
