package sshdial

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatui/hatui/console/sshdial/sshtest"
	"github.com/hatui/hatui/protocol/client"
	"golang.org/x/crypto/ssh"
)

// The Dialer is a protocol/client.DialFunc.
var _ client.DialFunc = (*Dialer)(nil).Dial

// rig is one sshd with an echo socket playing the agent and Options that
// reach it with nothing from the real ~/.ssh or /etc/ssh.
type rig struct {
	srv  *sshtest.Server
	sock string
	kh   string // known_hosts holding srv's key
	home string
}

func newRig(t *testing.T, cfg sshtest.Config) *rig {
	t.Helper()
	r := &rig{srv: sshtest.Start(t, cfg), sock: sshtest.EchoSocket(t), home: t.TempDir()}
	r.kh = sshtest.KnownHostsFile(t, false, r.srv)
	return r
}

func (r *rig) target() string { return r.srv.User + "@" + r.srv.Addr }

// opts isolates the dialer from the machine: no config files, no agent, a
// private home, the rig's known_hosts and key.
func (r *rig) opts() Options {
	return Options{
		SocketPath:      r.sock,
		ConfigFiles:     []string{},
		Home:            r.home,
		AgentSocket:     "none",
		IdentityFiles:   []string{r.srv.UserKeyPath},
		KnownHostsFiles: []string{r.kh},
		ConnectTimeout:  30 * time.Second, // generous: the test machine may be loaded
	}
}

func newDialer(t *testing.T, target string, o Options) *Dialer {
	t.Helper()
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	d, err := New(target, o)
	if err != nil {
		t.Fatalf("New(%q): %v", target, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exchange sends a line through nc and checks the echo socket's answer.
// Streams over SSH have no deadlines, so the read is bounded here.
func exchange(t *testing.T, nc net.Conn, msg string) {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		if _, err := fmt.Fprintln(nc, msg); err != nil {
			ch <- result{"", err}
			return
		}
		line, err := bufio.NewReader(nc).ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil || r.line != "echo: "+msg+"\n" {
			t.Fatalf("exchange %q: got %q, %v", msg, r.line, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("exchange %q: no answer", msg)
	}
}

func (d *Dialer) connectCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connects
}

func wantKind(t *testing.T, err error, k Kind, sentinel error, substrs ...string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", k)
	}
	t.Logf("error: %v", err)
	var e *Error
	if !errors.As(err, &e) || e.Kind != k || !errors.Is(err, sentinel) {
		t.Fatalf("err = %v (kind %v), want kind %v", err, KindOf(err), k)
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	return e
}

func TestDialReusesOneConnection(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	d := newDialer(t, r.target(), r.opts())
	ctx := testCtx(t)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := d.Dial(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			exchange(t, nc, fmt.Sprintf("hello %d", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := d.connectCount(); n != 1 {
		t.Errorf("%d SSH connections for 8 dials, want 1", n)
	}
	if n := strings.Count(r.srv.Logs(), "Accepted publickey"); n != 1 {
		t.Errorf("sshd saw %d logins, want 1", n)
	}
}

func TestDialWithClient(t *testing.T) {
	// The dialer's streams carry whatever the agent speaks; here a
	// protocol/client handshake against the echo socket must fail as a
	// protocol error (not a transport one), proving bytes went through.
	r := newRig(t, sshtest.Config{})
	d := newDialer(t, r.target(), r.opts())
	_, err := client.Connect(testCtx(t), d.Dial, client.Options{Client: "sshdial-test"})
	if err == nil || strings.Contains(err.Error(), "connecting to agent") {
		t.Fatalf("Connect over sshdial: %v; want a failed hello exchange with the echo server", err)
	}
}

func TestHostKeyChangedRefused(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("hashed=%v", hashed), func(t *testing.T) {
			r := newRig(t, sshtest.Config{})
			// known_hosts holds another server's key under this address.
			other := sshtest.NewKey(t, filepath.Join(t.TempDir(), "other"), "")
			name := r.srv.KnownHostsAddress()
			if err := appendKnownHost(r.kh+".changed", hashed, name, other.PublicKey()); err != nil {
				t.Fatal(err)
			}
			o := r.opts()
			o.KnownHostsFiles = []string{r.kh + ".changed"}
			o.AskUnknown = func(string, ssh.PublicKey) (bool, error) {
				t.Error("asked about a changed key; it must be refused outright")
				return true, nil
			}
			d := newDialer(t, r.target(), o)
			_, err := d.Dial(testCtx(t))
			e := wantKind(t, err, KindHostKeyChanged, ErrHostKeyChanged,
				"CHANGED", "man-in-the-middle", "reinstalled", r.kh+".changed", "line 1", "ssh-keygen -R '"+name+"'",
				ssh.FingerprintSHA256(r.srv.HostKey))
			if len(e.Known) != 1 || e.Known[0].Line != 1 || e.Known[0].Filename != r.kh+".changed" {
				t.Errorf("Known = %+v, want the one line of the file", e.Known)
			}
			if e.Key == nil || string(e.Key.Marshal()) != string(r.srv.HostKey.Marshal()) {
				t.Error("Key is not the key the server offered")
			}
		})
	}
}

func TestHostKeyUnknownRefusedWithoutAsk(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	o := r.opts()
	o.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "known_hosts")}
	d := newDialer(t, r.target(), o)
	_, err := d.Dial(testCtx(t))
	wantKind(t, err, KindHostKeyUnknown, ErrHostKeyUnknown,
		"not in known_hosts", fmt.Sprintf("ssh -p %d %s@127.0.0.1", r.srv.Port, r.srv.User), o.KnownHostsFiles[0])
	if _, err := os.Stat(o.KnownHostsFiles[0]); !errors.Is(err, os.ErrNotExist) {
		t.Error("known_hosts was written although nobody accepted the key")
	}
}

func TestHostKeyUnknownAsked(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer bool
		hashed bool
	}{
		{"accepted", true, false},
		{"accepted hashed", true, true},
		{"declined", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, sshtest.Config{})
			kh := filepath.Join(t.TempDir(), "ssh", "known_hosts") // directory created on write
			cfgPath := filepath.Join(t.TempDir(), "config")
			os.WriteFile(cfgPath, []byte(fmt.Sprintf("HashKnownHosts %v\n", map[bool]string{true: "yes", false: "no"}[tt.hashed])), 0o600)
			o := r.opts()
			o.ConfigFiles = []string{cfgPath}
			o.KnownHostsFiles = []string{kh}
			var asked []string
			o.AskUnknown = func(host string, key ssh.PublicKey) (bool, error) {
				asked = append(asked, host)
				if string(key.Marshal()) != string(r.srv.HostKey.Marshal()) {
					t.Error("asked about a key that is not the server's")
				}
				return tt.answer, nil
			}
			d := newDialer(t, r.target(), o)
			nc, err := d.Dial(testCtx(t))
			if len(asked) != 1 || asked[0] != r.srv.KnownHostsAddress() {
				t.Fatalf("asked about %q, want once about %s", asked, r.srv.KnownHostsAddress())
			}
			if !tt.answer {
				wantKind(t, err, KindHostKeyUnknown, ErrHostKeyUnknown, "not accepted")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			exchange(t, nc, "trusted now")
			b, _ := os.ReadFile(kh)
			if got := strings.HasPrefix(string(b), "|1|"); got != tt.hashed {
				t.Errorf("known_hosts %q: hashed %v, want %v", b, got, tt.hashed)
			}
			// A fresh dialer that cannot ask trusts the written entry.
			o.AskUnknown = nil
			d2 := newDialer(t, r.target(), o)
			nc2, err := d2.Dial(testCtx(t))
			if err != nil {
				t.Fatalf("after accepting, a new dialer: %v", err)
			}
			exchange(t, nc2, "still trusted")
		})
	}
}

func TestStrictHostKeyChecking(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	for _, tt := range []struct {
		policy string
		ok     bool
	}{
		{"accept-new", true},
		{"no", true},
		{"yes", false},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "config")
			os.WriteFile(cfgPath, []byte("StrictHostKeyChecking "+tt.policy+"\n"), 0o600)
			kh := filepath.Join(t.TempDir(), "known_hosts")
			o := r.opts()
			o.ConfigFiles = []string{cfgPath}
			o.KnownHostsFiles = []string{kh}
			o.AskUnknown = func(string, ssh.PublicKey) (bool, error) {
				t.Errorf("asked under StrictHostKeyChecking %s", tt.policy)
				return true, nil
			}
			d := newDialer(t, r.target(), o)
			_, err := d.Dial(testCtx(t))
			if !tt.ok {
				wantKind(t, err, KindHostKeyUnknown, ErrHostKeyUnknown, "StrictHostKeyChecking is yes")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(kh); !strings.Contains(string(b), r.srv.KnownHostsAddress()) {
				t.Errorf("known_hosts %q lacks the new host", b)
			}
		})
	}
}

func TestHashedKnownHosts(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	o := r.opts()
	o.KnownHostsFiles = []string{sshtest.KnownHostsFile(t, true, r.srv)}
	d := newDialer(t, r.target(), o)
	nc, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, nc, "hashed")
}

func TestProxyJump(t *testing.T) {
	jump := sshtest.Start(t, sshtest.Config{})
	node := sshtest.Start(t, sshtest.Config{UserKeyPath: jump.UserKeyPath})
	sock := sshtest.EchoSocket(t)
	kh := sshtest.KnownHostsFile(t, false, jump, node)
	cfgPath := filepath.Join(t.TempDir(), "config")
	cfg := fmt.Sprintf(`Host bastion
    HostName 127.0.0.1
    Port %d
    User %s
Host pbx
    HostName 127.0.0.1
    Port %d
    User %s
    ProxyJump bastion
Host *
    IdentityFile %s
`, jump.Port, jump.User, node.Port, node.User, jump.UserKeyPath)
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	o := Options{SocketPath: sock, ConfigFiles: []string{cfgPath}, Home: t.TempDir(), AgentSocket: "none", KnownHostsFiles: []string{kh}}

	d := newDialer(t, "pbx", o)
	if route := d.Route(); len(route) != 2 || route[0].Port != jump.Port || route[1].Port != node.Port {
		t.Fatalf("route %v, want bastion then pbx", route)
	}
	nc, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, nc, "via the jump")
	// The node was reached through the jump host, not directly.
	jump.WaitLog(t, fmt.Sprintf("target 127.0.0.1 port %d", node.Port), 15*time.Second)

	// Each hop's host key is checked against its own name.
	t.Run("jump host unknown", func(t *testing.T) {
		o := o
		o.KnownHostsFiles = []string{sshtest.KnownHostsFile(t, false, node)}
		d := newDialer(t, "pbx", o)
		_, err := d.Dial(testCtx(t))
		e := wantKind(t, err, KindHostKeyUnknown, ErrHostKeyUnknown, "ssh -p")
		if !strings.Contains(e.Host, fmt.Sprint(jump.Port)) {
			t.Errorf("error names hop %q, want the jump host", e.Host)
		}
	})
	t.Run("node unknown behind jump", func(t *testing.T) {
		o := o
		o.KnownHostsFiles = []string{sshtest.KnownHostsFile(t, false, jump)}
		d := newDialer(t, "pbx", o)
		_, err := d.Dial(testCtx(t))
		e := wantKind(t, err, KindHostKeyUnknown, ErrHostKeyUnknown, "ssh -J "+jump.User+"@bastion:"+fmt.Sprint(jump.Port))
		if !strings.HasPrefix(e.Host, "pbx") {
			t.Errorf("error names hop %q, want pbx", e.Host)
		}
	})
	t.Run("jump cannot reach node", func(t *testing.T) {
		o := o
		o.ProxyJump = "bastion"
		d := newDialer(t, fmt.Sprintf("%s@127.0.0.1:%d", node.User, closedPort(t)), o)
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindUnreachable, ErrUnreachable, "jump host could not connect")
	})
}

func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

func TestAuthDefaultIdentityFile(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	// The key only at ~/.ssh/id_ed25519, named nowhere.
	os.MkdirAll(filepath.Join(r.home, ".ssh"), 0o700)
	b, _ := os.ReadFile(r.srv.UserKeyPath)
	os.WriteFile(filepath.Join(r.home, ".ssh", "id_ed25519"), b, 0o600)
	o := r.opts()
	o.IdentityFiles = nil
	d := newDialer(t, r.target(), o)
	nc, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, nc, "default key")
}

func TestAuthOpenSSHAgent(t *testing.T) {
	agentBin := sshtest.RequireTool(t, "ssh-agent")
	addBin := sshtest.RequireTool(t, "ssh-add")
	r := newRig(t, sshtest.Config{})
	sockDir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	agentSock := startSSHAgent(t, agentBin, filepath.Join(sockDir, "agent.sock"))
	if out, err := execEnv([]string{"SSH_AUTH_SOCK=" + agentSock}, addBin, r.srv.UserKeyPath); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	// No key files at all: only the agent can log in, found through
	// SSH_AUTH_SOCK as ssh finds it.
	o := r.opts()
	o.IdentityFiles = nil
	o.AgentSocket = ""
	o.Getenv = func(k string) string {
		if k == "SSH_AUTH_SOCK" {
			return agentSock
		}
		return ""
	}
	d := newDialer(t, r.target(), o)
	nc, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, nc, "agent key")
}

func TestAuthEncryptedKey(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "id_ed25519")
	signer, raw := sshtest.NewKeyPair(t, keyPath, "correct horse")
	r := newRig(t, sshtest.Config{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}})
	base := r.opts()
	base.IdentityFiles = []string{keyPath}

	t.Run("no agent", func(t *testing.T) {
		d := newDialer(t, r.target(), base)
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindAuth, ErrAuth, "passphrase-protected", "no ssh-agent", "ssh-add "+keyPath)
	})
	t.Run("passphrase hook", func(t *testing.T) {
		o := base
		var asked []string
		o.Passphrase = func(p string) ([]byte, error) { asked = append(asked, p); return []byte("correct horse"), nil }
		d := newDialer(t, r.target(), o)
		nc, err := d.Dial(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, nc, "unlocked")
		if len(asked) != 1 || asked[0] != keyPath {
			t.Errorf("passphrase asked for %q, want once for %s", asked, keyPath)
		}
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		o := base
		o.Passphrase = func(string) ([]byte, error) { return []byte("wrong"), nil }
		d := newDialer(t, r.target(), o)
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindAuth, ErrAuth, "wrong passphrase")
	})
	t.Run("key in agent", func(t *testing.T) {
		// The decrypted key is in an ssh-agent (x/crypto's keyring on a
		// socket): the encrypted file is not a problem.
		o := base
		o.AgentSocket = serveKeyring(t, raw)
		o.Passphrase = func(string) ([]byte, error) {
			t.Error("passphrase asked although the agent holds the key")
			return nil, errors.New("no")
		}
		d := newDialer(t, r.target(), o)
		nc, err := d.Dial(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, nc, "agent has it")
	})
}

func TestAuthRejected(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	stranger := filepath.Join(t.TempDir(), "id_ed25519")
	sshtest.NewKey(t, stranger, "")
	o := r.opts()
	o.IdentityFiles = []string{stranger}
	d := newDialer(t, r.target(), o)
	_, err := d.Dial(testCtx(t))
	wantKind(t, err, KindAuth, ErrAuth, "accepted none of the keys", stranger, "authorized_keys", "no ssh-agent")
}

func TestUnreachable(t *testing.T) {
	t.Run("nothing listening", func(t *testing.T) {
		d := newDialer(t, fmt.Sprintf("root@127.0.0.1:%d", closedPort(t)), Options{ConfigFiles: []string{}, Home: t.TempDir(), AgentSocket: "none"})
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindUnreachable, ErrUnreachable, "could not connect", "connection refused")
	})
	t.Run("not an ssh server", func(t *testing.T) {
		addr := fakeServer(t, func(c net.Conn) { io.WriteString(c, "HTTP/1.0 400 Bad Request\r\n\r\n"); c.Close() })
		d := newDialer(t, "root@"+addr, Options{ConfigFiles: []string{}, Home: t.TempDir(), AgentSocket: "none"})
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindUnreachable, ErrUnreachable, "SSH handshake failed")
	})
	t.Run("silent server", func(t *testing.T) {
		addr := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		d := newDialer(t, "root@"+addr, Options{ConfigFiles: []string{}, Home: t.TempDir(), AgentSocket: "none", ConnectTimeout: 300 * time.Millisecond})
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindUnreachable, ErrUnreachable, "ConnectTimeout")
	})
	t.Run("caller context", func(t *testing.T) {
		addr := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		d := newDialer(t, "root@"+addr, Options{ConfigFiles: []string{}, Home: t.TempDir(), AgentSocket: "none"})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := d.Dial(ctx)
		wantKind(t, err, KindUnreachable, ErrUnreachable)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v does not wrap the context's deadline", err)
		}
	})
}

// fakeServer accepts TCP connections on loopback and hands them to serve.
func fakeServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	return l.Addr().String()
}

func TestSocketErrors(t *testing.T) {
	t.Run("missing socket", func(t *testing.T) {
		r := newRig(t, sshtest.Config{})
		o := r.opts()
		o.SocketPath = "/run/ha-agent-test-nonexistent/ha-agent.sock"
		d := newDialer(t, r.target(), o)
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindSocket, ErrSocket, "no agent socket at "+o.SocketPath, "ha-agent")
	})
	t.Run("forwarding disabled", func(t *testing.T) {
		r := newRig(t, sshtest.Config{Settings: []string{"AllowStreamLocalForwarding no"}})
		d := newDialer(t, r.target(), r.opts())
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindSocket, ErrSocket, "refused to forward", "AllowStreamLocalForwarding yes")
	})
	t.Run("no diagnosis", func(t *testing.T) {
		r := newRig(t, sshtest.Config{KeyOptions: "restrict"})
		o := r.opts()
		o.NoDiagnose = true
		d := newDialer(t, r.target(), o)
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindSocket, ErrSocket, "could not connect to", "AllowStreamLocalForwarding", "group", "ha-agent is not running")
		if strings.Contains(r.srv.Logs(), "session_new") {
			t.Error("a session was opened although NoDiagnose is set")
		}
	})
}

func TestSocketFailureWording(t *testing.T) {
	hop := Hop{Alias: "pbx-a1", HostName: "10.1.1.11", Port: 22, User: "ops"}
	verdict, group, who := parseDiagnosis("denied hatui ops\n", "ops")
	e := socketFailure(hop, DefaultSocketPath, nil, verdict, group, who)
	for _, want := range []string{"user ops may not open /run/ha-agent/ha-agent.sock", "usermod -aG hatui ops"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%q lacks %q", e, want)
		}
	}
	if v, _, _ := parseDiagnosis("something odd", "ops"); v != "" {
		t.Errorf("unknown output gave verdict %q", v)
	}
}

func TestKeepaliveNoticesDeadServer(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	o := r.opts()
	// Short enough to keep the test quick, long enough that a loaded
	// machine does not miss three answers in a row from a live sshd.
	o.KeepaliveInterval = 500 * time.Millisecond
	o.KeepaliveCountMax = 3
	d := newDialer(t, r.target(), o)
	nc, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, nc, "before")

	// The server hangs: TCP stays up, nothing answers.
	r.srv.Freeze()
	readErr := make(chan error, 1)
	go func() {
		_, err := nc.Read(make([]byte, 1))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("read returned data from a frozen server")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream stayed open 20 s after the server froze; keepalives did not notice")
	}
	d.mu.Lock()
	s := d.cur
	d.mu.Unlock()
	if s.alive() {
		t.Fatal("session still alive after keepalive failure")
	}
	if KindOf(s.err) != KindUnreachable || !strings.Contains(s.err.Error(), "stopped answering") {
		t.Errorf("session ended with %v, want the keepalive failure", s.err)
	}

	// Back up: the next Dial makes a new connection.
	r.srv.Thaw()
	nc2, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, nc2, "after")
	if n := d.connectCount(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestRedialAfterConnectionKilled(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	o := r.opts()
	o.KeepaliveInterval = -1 // only the closed TCP connection tells
	d := newDialer(t, r.target(), o)
	nc, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, nc, "first")
	r.srv.KillConnections()
	// Whether or not the dialer has seen the close yet, Dial must work.
	nc2, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, nc2, "second")
	if n := d.connectCount(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestClose(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	d := newDialer(t, r.target(), r.opts())
	nc, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Error("stream still readable after Close")
	}
	if _, err := d.Dial(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close: %v, want ErrClosed", err)
	}
}

func TestFor(t *testing.T) {
	// Two members of a cluster; the operator accepted the first's key on
	// the terminal. Another member is dialled while the screen owns the
	// terminal: its unknown key is refused, never asked about.
	a := sshtest.Start(t, sshtest.Config{})
	b := sshtest.Start(t, sshtest.Config{UserKeyPath: a.UserKeyPath})
	sock := sshtest.EchoSocket(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var asked []string
	o := Options{SocketPath: sock, ConfigFiles: []string{}, Home: t.TempDir(), AgentSocket: "none",
		IdentityFiles: []string{a.UserKeyPath}, KnownHostsFiles: []string{kh},
		AskUnknown: func(host string, _ ssh.PublicKey) (bool, error) { asked = append(asked, host); return true, nil }}
	d := newDialer(t, a.User+"@"+a.Addr, o)
	if _, err := d.Dial(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	d2, err := d.For(b.User + "@" + b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, err := d2.Dial(testCtx(t)); err == nil || len(asked) != 1 {
		t.Errorf("dial of an unknown member: err %v, asked %q; want it refused without asking", err, asked)
	}
	// Host keys accepted by one are trusted by the other without a file.
	os.Remove(kh)
	d3, _ := d2.For(a.User + "@" + a.Addr)
	defer d3.Close()
	nc, err := d3.Dial(testCtx(t))
	if err != nil || len(asked) != 1 {
		t.Fatalf("dial back to the first member: %v, asked %q", err, asked)
	}
	exchange(t, nc, "first member again")
}
