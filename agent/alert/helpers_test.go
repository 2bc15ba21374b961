package alert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logBuf collects a sender's log lines for assertions; the test prints
// them when it fails.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines that contain every one of parts.
func (l *logBuf) lines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func testLogger(t *testing.T) (*slog.Logger, *logBuf) {
	t.Helper()
	buf := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sender log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// newSender starts a sender and closes it when the test ends.
func newSender(t *testing.T, cfg Config, log *slog.Logger) *Sender {
	t.Helper()
	s, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds, failing the test after timeout. The
// machine is shared and small: timeouts are generous.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// queueFiles lists the queue files in dir.
func queueFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hookRequest is one request a test webhook received.
type hookRequest struct {
	Alert  Alert
	Raw    map[string]any
	Header http.Header
	Status int // what the hook answered
}

// hook is a webhook receiver. Reply decides the status of each request
// (n counts requests from 1); 200 when nil.
type hook struct {
	mu    sync.Mutex
	reqs  []hookRequest
	Reply func(a Alert, n int) int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var a Alert
	var raw map[string]any
	if r.Method != http.MethodPost || json.Unmarshal(body, &a) != nil || json.Unmarshal(body, &raw) != nil {
		http.Error(w, "want a POSTed JSON alert", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	status := http.StatusOK
	if h.Reply != nil {
		status = h.Reply(a, len(h.reqs)+1)
	}
	h.reqs = append(h.reqs, hookRequest{Alert: a, Raw: raw, Header: r.Header.Clone(), Status: status})
	h.mu.Unlock()
	if status != http.StatusOK {
		http.Error(w, "hook says no", status)
		return
	}
	w.WriteHeader(status)
}

// requests returns every request so far.
func (h *hook) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

// delivered returns the alerts answered with 2xx, in arrival order.
func (h *hook) delivered() []Alert {
	var out []Alert
	for _, r := range h.requests() {
		if r.Status >= 200 && r.Status <= 299 {
			out = append(out, r.Alert)
		}
	}
	return out
}

func startHook(t *testing.T, h *hook) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// reservedPort holds a 127.0.0.1 port with a socket that is bound but not
// listening: connections to it are refused (the target is down) and no one
// else can take the port, so the same URL can come back up later.
type reservedPort struct {
	fd   int
	Addr string
}

func reservePort(t *testing.T) *reservedPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	p := &reservedPort{fd: fd, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))}
	t.Cleanup(func() {
		if p.fd >= 0 {
			syscall.Close(p.fd)
		}
	})
	return p
}

// listen brings the port up.
func (p *reservedPort) listen(t *testing.T) net.Listener {
	t.Helper()
	if err := syscall.Listen(p.fd, 128); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(p.fd), "reserved")
	p.fd = -1
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// selfSigned returns a server TLS configuration for 127.0.0.1, a client
// one that trusts it, and the certificate in PEM.
func selfSigned(t *testing.T) (server, client *tls.Config, certPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hatui test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return server, client, certPEM
}
