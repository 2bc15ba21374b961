package sshdial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// agentConn is the ssh-agent connection shared by the hops of one connect.
type agentConn struct {
	path   string
	client agent.ExtendedAgent
	conn   net.Conn
	err    error // why it could not be reached
}

func dialAgent(ctx context.Context, path string) *agentConn {
	a := &agentConn{path: path}
	if path == "" {
		return a
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		a.err = err
		return a
	}
	a.conn = c
	a.client = agent.NewClient(c)
	return a
}

func (a *agentConn) Close() {
	if a != nil && a.conn != nil {
		a.conn.Close()
	}
}

// keyAuth collects the signers for one hop: ssh-agent keys first, then key
// files the agent does not hold, and remembers what it skipped so a
// failure can say why.
type keyAuth struct {
	hop        Hop
	agent      *agentConn
	passphrase func(string) ([]byte, error)
	logf       func(string, ...any)

	once    sync.Once
	signers []ssh.Signer
	offered []string // descriptions, for the error
	notes   []string // keys that could not be used and why
}

func (k *keyAuth) method() ssh.AuthMethod {
	// One PublicKeysCallback for every key: x/crypto tries each auth method
	// name only once, so a second "publickey" method would never run.
	return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		k.once.Do(k.load)
		return k.signers, nil
	})
}

type fileKey struct {
	path   string
	pub    ssh.PublicKey // nil if unknown (encrypted, no .pub)
	signer ssh.Signer    // nil if encrypted
}

func (k *keyAuth) load() {
	var files []fileKey
	for _, p := range k.hop.IdentityFiles {
		fk, err := readKeyFile(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				k.notes = append(k.notes, fmt.Sprintf("%s could not be read: %v", p, err))
			}
			continue
		}
		files = append(files, fk)
	}

	have := map[string]bool{}
	add := func(s ssh.Signer, what string) {
		m := string(s.PublicKey().Marshal())
		if have[m] {
			return
		}
		have[m] = true
		k.signers = append(k.signers, s)
		k.offered = append(k.offered, what)
		k.logf("sshdial: %s: offering %s", k.hop, what)
	}

	if k.agent != nil && k.agent.client != nil {
		signers, err := k.agent.client.Signers()
		if err != nil {
			k.notes = append(k.notes, fmt.Sprintf("ssh-agent at %s did not list its keys: %v", k.agent.path, err))
		}
		for _, s := range signers {
			if k.hop.IdentitiesOnly && !slices.ContainsFunc(files, func(f fileKey) bool {
				return f.pub != nil && string(f.pub.Marshal()) == string(s.PublicKey().Marshal())
			}) {
				continue
			}
			add(s, "ssh-agent key "+describeKey(s.PublicKey()))
		}
	}

	for _, f := range files {
		switch {
		case f.signer != nil:
			add(f.signer, f.path)
		case f.pub != nil && have[string(f.pub.Marshal())]:
			// The agent holds the decrypted key already.
		case f.pub != nil:
			// Offer the public half; the passphrase is only needed if the
			// server accepts it.
			add(&lazySigner{path: f.path, pub: f.pub, passphrase: k.passphrase}, f.path+" (passphrase-protected)")
		case k.passphrase != nil:
			// No public half to offer: decrypt now.
			s, err := decryptKeyFile(f.path, k.passphrase)
			if err != nil {
				k.notes = append(k.notes, err.Error())
				continue
			}
			add(s, f.path)
		default:
			k.notes = append(k.notes, fmt.Sprintf("%s is passphrase-protected and no ssh-agent holds it", f.path))
		}
	}
}

// readKeyFile reads a private key file. An encrypted key yields a fileKey
// without signer, with its public key from the file itself (OpenSSH
// format) or from path.pub.
func readKeyFile(path string) (fileKey, error) {
	fk := fileKey{path: path}
	b, err := os.ReadFile(path)
	if err != nil {
		return fk, err
	}
	s, err := ssh.ParsePrivateKey(b)
	if err == nil {
		fk.signer, fk.pub = s, s.PublicKey()
		return fk, nil
	}
	var pm *ssh.PassphraseMissingError
	if !errors.As(err, &pm) {
		return fk, fmt.Errorf("not a private key: %w", err)
	}
	fk.pub = pm.PublicKey
	if fk.pub == nil {
		if pb, err := os.ReadFile(path + ".pub"); err == nil {
			if pub, _, _, _, err := ssh.ParseAuthorizedKey(pb); err == nil {
				fk.pub = pub
			}
		}
	}
	return fk, nil
}

func decryptKeyFile(path string, passphrase func(string) ([]byte, error)) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pp, err := passphrase(path)
	if err != nil {
		return nil, fmt.Errorf("asking the passphrase of %s: %w", path, err)
	}
	s, err := ssh.ParsePrivateKeyWithPassphrase(b, pp)
	if err != nil {
		return nil, fmt.Errorf("decrypting %s: %w (wrong passphrase?)", path, err)
	}
	return s, nil
}

// lazySigner offers an encrypted key's public half and decrypts the key
// only when the server is willing to accept it.
type lazySigner struct {
	path       string
	pub        ssh.PublicKey
	passphrase func(string) ([]byte, error)

	mu     sync.Mutex
	signer ssh.Signer
}

func (l *lazySigner) PublicKey() ssh.PublicKey { return l.pub }

func (l *lazySigner) get() (ssh.Signer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.signer != nil {
		return l.signer, nil
	}
	if l.passphrase == nil {
		return nil, &Error{Kind: KindAuth,
			Msg:  fmt.Sprintf("the node accepts key %s, but it is passphrase-protected and no ssh-agent holds it", l.path),
			Hint: fmt.Sprintf("load it into your ssh-agent first: eval $(ssh-agent) (if none runs) then ssh-add %s", l.path)}
	}
	s, err := decryptKeyFile(l.path, l.passphrase)
	if err != nil {
		return nil, &Error{Kind: KindAuth, Msg: "unlocking key", Err: err}
	}
	if string(s.PublicKey().Marshal()) != string(l.pub.Marshal()) {
		return nil, &Error{Kind: KindAuth, Msg: fmt.Sprintf("%s does not hold the key its public half names", l.path),
			Hint: "regenerate " + l.path + ".pub with ssh-keygen -y -f " + l.path}
	}
	l.signer = s
	return s, nil
}

func (l *lazySigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Sign(rand, data)
}

// SignWithAlgorithm lets RSA keys sign with rsa-sha2-256/512, which
// current sshd requires.
func (l *lazySigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		return nil, fmt.Errorf("key %s cannot sign with %s", l.path, algorithm)
	}
	return as.SignWithAlgorithm(rand, data, algorithm)
}

// authError explains a login the server refused.
func (k *keyAuth) authError(cause error) *Error {
	k.once.Do(k.load)
	e := &Error{Kind: KindAuth, Host: k.hop.String(), Err: cause}
	if len(k.offered) == 0 {
		e.Msg = "no key to log in with"
	} else {
		e.Msg = "the node accepted none of the keys offered (" + strings.Join(k.offered, ", ") + ")"
	}
	var hints []string
	if k.agent != nil && k.agent.err != nil {
		hints = append(hints, fmt.Sprintf("the ssh-agent at %s could not be reached (%v): start one with eval $(ssh-agent) and ssh-add your key", k.agent.path, k.agent.err))
	} else if k.agent == nil || k.agent.path == "" {
		hints = append(hints, "no ssh-agent was used (SSH_AUTH_SOCK is not set)")
	}
	for _, n := range k.notes {
		if strings.Contains(n, "passphrase-protected") {
			hints = append(hints, n+": ssh-add it to your ssh-agent (eval $(ssh-agent) if none runs)")
		} else {
			hints = append(hints, n)
		}
	}
	hints = append(hints, fmt.Sprintf("check that your public key is in ~%s/.ssh/authorized_keys on the node, or name the right key with IdentityFile in ~/.ssh/config", k.hop.User))
	e.Hint = strings.Join(hints, "; ")
	return e
}
