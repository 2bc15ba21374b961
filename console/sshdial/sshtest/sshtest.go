// Package sshtest runs a real OpenSSH server (/usr/sbin/sshd) for tests of
// code that reaches an agent through a node's sshd: throwaway host and user
// keys, an authorized_keys file and an sshd_config in a temporary directory,
// listening on a free loopback port, torn down by t.Cleanup.
//
// A real sshd is used rather than x/crypto's server so that the console is
// tested against what is actually installed on the nodes: OpenSSH's own
// stream local forwarding checks, its messages and its keepalive replies.
//
// sshd is run as root (privilege separation needs it); when the binary or
// the privilege is missing, tests are skipped, unless the CI environment
// variable is "true", in which case they fail.
package sshtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDPath is the OpenSSH server binary the tests run.
const SSHDPath = "/usr/sbin/sshd"

// startTimeout bounds how long Start waits for sshd to listen.
const startTimeout = 20 * time.Second

// Require skips the test (or fails it when CI=true) unless a real sshd can
// be run here: the binary exists and the test runs as root.
func Require(t testing.TB) {
	t.Helper()
	var why string
	if _, err := os.Stat(SSHDPath); err != nil {
		why = fmt.Sprintf("%s is missing (install openssh-server)", SSHDPath)
	} else if os.Geteuid() != 0 {
		why = "sshd's privilege separation needs root; run the tests as root"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// RequireTool is like Require for another binary (ssh-agent, ssh-add).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found (install openssh-client): %v", name, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Config tunes a Server. The zero value gives a server that accepts a
// fresh user key and allows stream local and TCP forwarding.
type Config struct {
	// Settings are sshd_config lines placed before the harness defaults.
	// sshd keeps the first value it reads for a keyword, so these override
	// the defaults (e.g. "AllowStreamLocalForwarding no").
	Settings []string
	// Tail lines are appended after the defaults: Match blocks go here.
	Tail []string
	// AuthorizedKeys are authorized in addition to the server's user key.
	AuthorizedKeys []ssh.PublicKey
	// KeyOptions prefix every authorized_keys line (e.g. "restrict").
	KeyOptions string
	// UserKeyPath, when set, is an existing private key file used as the
	// server's user key instead of a fresh one; two servers sharing one
	// key let a ProxyJump chain use a single identity.
	UserKeyPath string
}

// Server is a running sshd.
type Server struct {
	Addr string // "127.0.0.1:port"
	Host string // "127.0.0.1"
	Port int
	User string // the login user (the user running the test)
	Dir  string // the server's private directory

	HostKey     ssh.PublicKey // the server's ed25519 host key
	UserKeyPath string        // unencrypted private key authorized on the server
	UserKey     ssh.Signer    // the same key, loaded

	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{} // closed when sshd exits
}

// Start runs sshd with cfg and returns it listening. Everything is removed
// and every process it started is killed on t.Cleanup.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	Require(t)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("creating sshd's privilege separation directory /run/sshd: %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("looking up the current user: %v", err)
	}
	dir := t.TempDir()
	s := &Server{Host: "127.0.0.1", User: u.Username, Dir: dir}

	hostSigner, _ := writeKey(t, filepath.Join(dir, "ssh_host_ed25519_key"), "sshtest-host", nil)
	s.HostKey = hostSigner.PublicKey()
	if cfg.UserKeyPath != "" {
		s.UserKeyPath = cfg.UserKeyPath
		s.UserKey = LoadKey(t, cfg.UserKeyPath)
	} else {
		s.UserKeyPath = filepath.Join(dir, "id_ed25519")
		s.UserKey, _ = writeKey(t, s.UserKeyPath, "sshtest-user", nil)
	}
	var ak bytes.Buffer
	for _, k := range append([]ssh.PublicKey{s.UserKey.PublicKey()}, cfg.AuthorizedKeys...) {
		if cfg.KeyOptions != "" {
			ak.WriteString(cfg.KeyOptions + " ")
		}
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ak.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		if err := s.start(t, cfg, port); err != nil {
			lastErr = err
			if errors.Is(err, errPortTaken) {
				continue
			}
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("starting sshd: %v", lastErr)
	return nil
}

var errPortTaken = errors.New("port taken")

func (s *Server) start(t testing.TB, cfg Config, port int) error {
	t.Helper()
	conf := filepath.Join(s.Dir, "sshd_config")
	var b strings.Builder
	for _, l := range cfg.Settings {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "ListenAddress 127.0.0.1:%d\n", port)
	fmt.Fprintf(&b, "HostKey %s\n", filepath.Join(s.Dir, "ssh_host_ed25519_key"))
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(s.Dir, "sshd.pid"))
	fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", filepath.Join(s.Dir, "authorized_keys"))
	b.WriteString(`StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
UseDNS no
PrintMotd no
MaxAuthTries 20
MaxStartups 100
LogLevel DEBUG1
`)
	if newerThan98() {
		// OpenSSH 9.8 penalises addresses with failed logins; tests of
		// refused logins would then lock each other out of 127.0.0.1.
		b.WriteString("PerSourcePenalties no\n")
	}
	for _, l := range cfg.Tail {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return err
	}

	s.log = &logBuffer{}
	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", conf)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	// Its own process group, so that a Ctrl-C of the test run does not
	// race our cleanup and so Freeze can address it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Connection processes inherit stderr; do not let one that outlives
	// the listener hold Wait forever.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", SSHDPath, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()

	want := fmt.Sprintf("Server listening on 127.0.0.1 port %d", port)
	deadline := time.Now().Add(startTimeout)
	for {
		if strings.Contains(s.log.String(), want) {
			break
		}
		select {
		case <-s.done:
			out := s.log.String()
			if strings.Contains(out, "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("sshd exited at start: %s\nconfig:\n%s", out, b.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("sshd did not listen within %v: %s", startTimeout, s.log.String())
		}
	}
	s.Port = port
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("sshd %s log:\n%s", s.Addr, s.log.String())
		}
	})
	return nil
}

// Logs returns what sshd has logged so far (LogLevel DEBUG1).
func (s *Server) Logs() string { return s.log.String() }

// WaitLog waits until sshd's log contains substr, failing the test after
// timeout.
func (s *Server) WaitLog(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(s.log.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("sshd %s did not log %q within %v", s.Addr, substr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KnownHostsAddress is how known_hosts names this server: "[127.0.0.1]:port".
func (s *Server) KnownHostsAddress() string { return knownhosts.Normalize(s.Addr) }

// KnownHostsLine returns a known_hosts line for the server's host key.
// With hashed true the host name is hashed as HashKnownHosts does.
func (s *Server) KnownHostsLine(hashed bool) string {
	host := s.KnownHostsAddress()
	if hashed {
		host = knownhosts.HashHostname(host)
	}
	return knownhosts.Line([]string{host}, s.HostKey)
}

// KnownHostsFile writes a known_hosts file holding the lines of servers
// (hashed or not) to a fresh temporary directory and returns its path.
func KnownHostsFile(t testing.TB, hashed bool, servers ...*Server) string {
	t.Helper()
	var b strings.Builder
	for _, s := range servers {
		b.WriteString(s.KnownHostsLine(hashed) + "\n")
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Stop kills sshd and every connection process it forked; clients see
// their connections close.
func (s *Server) Stop() { s.kill() }

// KillConnections kills the per-connection sshd processes but leaves the
// listener running, as a crash of one session would.
func (s *Server) KillConnections() {
	for _, pid := range descendants(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Freeze stops (SIGSTOP) sshd and its connection processes: the kernel
// still holds the TCP connections open but nothing answers, like a node
// that hangs or a link that silently drops packets.
func (s *Server) Freeze() {
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGSTOP)
	for _, pid := range descendants(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
}

// Thaw resumes a frozen server.
func (s *Server) Thaw() {
	for _, pid := range descendants(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		// Connection processes call setsid, so the process group does not
		// reach them: kill the descendants by id, then the listener.
		kids := descendants(s.cmd.Process.Pid)
		for _, pid := range kids {
			syscall.Kill(pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGCONT)
		}
		s.cmd.Process.Kill()
		syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
		<-s.done
	}
}

// descendants lists the processes below pid (children first found, then
// theirs), read from /proc.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may contain spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	var out []int
	frontier := []int{pid}
	for len(frontier) > 0 {
		var next []int
		for p, pp := range parent {
			for _, f := range frontier {
				if pp == f {
					next = append(next, p)
				}
			}
		}
		out = append(out, next...)
		frontier = next
	}
	return out
}

var (
	versionOnce sync.Once
	versionNew  bool
)

// newerThan98 reports whether the installed sshd is OpenSSH 9.8 or later.
func newerThan98() bool {
	versionOnce.Do(func() {
		out, _ := exec.Command(SSHDPath, "-V").CombinedOutput()
		m := regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`).FindSubmatch(out)
		if m == nil {
			return
		}
		maj, _ := strconv.Atoi(string(m[1]))
		minor, _ := strconv.Atoi(string(m[2]))
		versionNew = maj > 9 || maj == 9 && minor >= 8
	})
	return versionNew
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NewKey writes a fresh ed25519 private key in OpenSSH format to path
// (mode 0600) and its public half to path+".pub", and returns the signer.
// A non-empty passphrase encrypts the private key file.
func NewKey(t testing.TB, path, passphrase string) ssh.Signer {
	t.Helper()
	s, _ := NewKeyPair(t, path, passphrase)
	return s
}

// NewKeyPair is NewKey that also returns the raw private key, e.g. to load
// into an in-memory ssh-agent keyring.
func NewKeyPair(t testing.TB, path, passphrase string) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	var pp []byte
	if passphrase != "" {
		pp = []byte(passphrase)
	}
	return writeKey(t, path, "sshtest", pp)
}

func writeKey(t testing.TB, path, comment string, passphrase []byte) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase != nil {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, comment, passphrase)
	} else {
		block, err = ssh.MarshalPrivateKey(priv, comment)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	return signer, priv
}

// LoadKey reads an unencrypted private key file.
func LoadKey(t testing.TB, path string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("parsing key %s: %v", path, err)
	}
	return s
}

// EchoSocket starts a Unix socket server that plays the agent: it writes
// back every line it reads, prefixed with "echo: ". It returns the socket
// path, in a short directory so the path fits sun_path. The socket is mode
// 0660 like the agent's.
func EchoSocket(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sshtest")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	os.Chmod(path, 0o660)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := fmt.Fprintf(c, "echo: %s\n", sc.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return path
}

// logBuffer collects sshd's output; it is written by the exec package's
// copying goroutine and read by tests.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

var _ io.Writer = (*logBuffer)(nil)

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
