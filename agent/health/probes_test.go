package health

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startSipp runs sipp as a SIP UAS answering OPTIONS with 200 on a free
// loopback port and returns host:port once it answers.
func startSipp(t *testing.T) string {
	t.Helper()
	sipp := need(t, "sipp")
	scenario, err := filepath.Abs("testdata/sipp-uas-options.xml")
	if err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	cmd := exec.Command(sipp, "-sf", scenario, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-nostdin")
	cmd.Dir = t.TempDir() // sipp writes its logs to the working directory
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := mustCheck(t, spec("sipp-ready", "sip", map[string]string{"address": addr}))
	waitFor(t, "sipp to answer OPTIONS", 10*time.Second, func() bool {
		_, err := c.Probe(testCtx(t))
		return err == nil
	})
	return addr
}

func TestSIPCheckAgainstSipp(t *testing.T) {
	ctx := testCtx(t)
	addr := startSipp(t)

	out, err := mustCheck(t, spec("pbx-sip", "sip", map[string]string{"address": addr})).Probe(ctx)
	if err != nil || !strings.HasPrefix(out, "200 OK in ") {
		t.Fatalf("probe = %q, %v; want 200 OK", out, err)
	}
	out, err = mustCheck(t, spec("pbx-sip-200", "sip", map[string]string{"address": addr, "accept": "200-299"})).Probe(ctx)
	if err != nil {
		t.Fatalf("accept 200-299: %q %v", out, err)
	}
	_, err = mustCheck(t, spec("pbx-sip-486", "sip", map[string]string{"address": addr, "accept": "486"})).Probe(ctx)
	if err == nil || !strings.Contains(err.Error(), "answered 200 OK; accepted: 486") {
		t.Fatalf("accept 486 against a 200 = %v, want a failure naming both", err)
	}
}

func TestSIPCheckSilentPeerTimesOut(t *testing.T) {
	// A socket that reads and never answers: a hung PBX.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan int, 16)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				close(got)
				return
			}
			if strings.HasPrefix(string(buf[:n]), "OPTIONS ") {
				got <- n
			}
		}
	}()
	s := spec("silent", "sip", map[string]string{"address": pc.LocalAddr().String()})
	s.Timeout = 1200 * time.Millisecond
	s.Interval = 2 * time.Second
	_, err = mustCheck(t, s).Probe(testCtx(t))
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "no SIP answer") {
		t.Fatalf("probe of a silent peer = %v, want a timeout", err)
	}
	// Timer E: the request was sent at 0 and retransmitted at 500 ms.
	if n := len(got); n < 2 {
		t.Fatalf("peer saw %d OPTIONS, want the request and at least one retransmission", n)
	}
}

func TestSIPCheckClosedPortFails(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeUDPPort(t)))
	_, err := mustCheck(t, spec("closed", "sip", map[string]string{"address": addr})).Probe(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "nothing listens") {
		t.Fatalf("probe of a closed port = %v, want 'nothing listens'", err)
	}
}

func TestSIPCheckIgnoresStaleAndGarbage(t *testing.T) {
	// A peer that first sends garbage and an answer to another Call-ID,
	// then a provisional, then the real final answer.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 4096)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		req, _ := parseRequestHeaders(buf[:n])
		answer := func(code, callID string) []byte {
			return []byte("SIP/2.0 " + code + "\r\nVia: " + req["via"] + "\r\nCall-ID: " + callID + "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
		}
		pc.WriteTo([]byte("\x00\x01garbage"), from)
		pc.WriteTo(answer("200 OK", "stale@x"), from)
		pc.WriteTo(answer("100 Trying", req["call-id"]), from)
		pc.WriteTo(answer("503 Service Unavailable", req["call-id"]), from)
	}()
	s := spec("picky", "sip", map[string]string{"address": pc.LocalAddr().String(), "accept": "200"})
	_, err = mustCheck(t, s).Probe(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "answered 503 Service Unavailable") {
		t.Fatalf("probe = %v, want the final 503 to decide, not the stale 200 or the 100", err)
	}
}

// parseRequestHeaders reads header values of a request, lower-cased names.
func parseRequestHeaders(b []byte) (map[string]string, string) {
	h := map[string]string{}
	lines := strings.Split(string(b), "\r\n")
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			h[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	return h, lines[0]
}

func TestOptionsRequestIsWellFormed(t *testing.T) {
	req := string(OptionsRequest("sip:127.0.0.1:5060", "hatui", "127.0.0.1:40000", "127.0.0.1:5060", "abc@127.0.0.1", "z9hG4bKdeadbeef", "f00"))
	h, start := parseRequestHeaders([]byte(req))
	if start != "OPTIONS sip:127.0.0.1:5060 SIP/2.0" {
		t.Errorf("request line %q", start)
	}
	for k, want := range map[string]string{
		"via":            "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKdeadbeef;rport",
		"from":           "<sip:hatui@127.0.0.1>;tag=f00",
		"to":             "<sip:127.0.0.1:5060>",
		"call-id":        "abc@127.0.0.1",
		"cseq":           "1 OPTIONS",
		"max-forwards":   "70",
		"content-length": "0",
	} {
		if h[k] != want {
			t.Errorf("%s: %q, want %q", k, h[k], want)
		}
	}
	if !strings.HasSuffix(req, "\r\n\r\n") {
		t.Error("request does not end with an empty line")
	}
	v6 := string(OptionsRequest("sip:[::1]:5060", "hatui", "[::1]:40000", "[::1]:5060", "a@::1", "z9hG4bKx", "t"))
	if !strings.Contains(v6, "From: <sip:hatui@[::1]>;tag=t") {
		t.Errorf("IPv6 From not bracketed:\n%s", v6)
	}
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	c := mustCheck(t, spec("ami", "tcp", map[string]string{"address": addr}))
	if out, err := c.Probe(testCtx(t)); err != nil || !strings.HasPrefix(out, "connected to "+addr) {
		t.Fatalf("probe of a listener = %q, %v", out, err)
	}
	ln.Close()
	if _, err := c.Probe(testCtx(t)); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("probe of a closed port = %v, want connection refused", err)
	}
}

func TestHTTPCheck(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "Asterisk Ready") })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "db gone", http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := testCtx(t)

	for _, tc := range []struct {
		params map[string]string
		ok     bool
		want   string
	}{
		{map[string]string{"url": srv.URL + "/ok"}, true, "200 OK"},
		{map[string]string{"url": srv.URL + "/ok", "contains": "Ready"}, true, "200 OK"},
		{map[string]string{"url": srv.URL + "/ok", "contains": "Fully Booted"}, false, `body lacks "Fully Booted"`},
		{map[string]string{"url": srv.URL + "/down"}, false, "answered 503 Service Unavailable; expected 200"},
		{map[string]string{"url": srv.URL + "/down", "expect": "200-299,503"}, true, "503"},
		{map[string]string{"url": srv.URL + "/moved"}, false, "answered 302 Found"},
		{map[string]string{"url": srv.URL + "/moved", "expect": "302"}, true, "302"},
	} {
		out, err := mustCheck(t, spec("web", "http", tc.params)).Probe(ctx)
		if (err == nil) != tc.ok {
			t.Errorf("%v: err = %v, want ok=%v", tc.params, err, tc.ok)
			continue
		}
		got := out
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%v: %q does not contain %q", tc.params, got, tc.want)
		}
	}
	srv.Close()
	if _, err := mustCheck(t, spec("web", "http", map[string]string{"url": srv.URL + "/ok"})).Probe(ctx); err == nil {
		t.Fatal("probe of a stopped server succeeded")
	}
}

func TestProcessCheck(t *testing.T) {
	// A real child under a name of its own: a copy of sleep.
	dir := t.TempDir()
	name := fmt.Sprintf("hsleep%d", os.Getpid()%100000)
	bin := filepath.Join(dir, name)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		cmd.Process.Kill()
		if !waited {
			cmd.Wait()
		}
	})
	pid := cmd.Process.Pid
	pidfile := filepath.Join(dir, "x.pid")
	os.WriteFile(pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644)
	ctx := testCtx(t)

	byName := mustCheck(t, spec("proc", "process", map[string]string{"name": name}))
	byPid := mustCheck(t, spec("pid", "process", map[string]string{"pidfile": pidfile, "name": name}))
	wrongName := mustCheck(t, spec("stale", "process", map[string]string{"pidfile": pidfile, "name": "asterisk"}))
	waitFor(t, "the child to exec", 5*time.Second, func() bool { _, err := byName.Probe(ctx); return err == nil })

	if out, err := byName.Probe(ctx); err != nil || !strings.Contains(out, "pid "+strconv.Itoa(pid)) {
		t.Fatalf("by name = %q, %v", out, err)
	}
	if out, err := byPid.Probe(ctx); err != nil || out != "pid "+strconv.Itoa(pid) {
		t.Fatalf("by pid file = %q, %v", out, err)
	}
	if _, err := wrongName.Probe(ctx); err == nil || !strings.Contains(err.Error(), "stale pid file") {
		t.Fatalf("pid file naming another process = %v, want stale", err)
	}

	// Killed but not yet reaped: a zombie is not a live process.
	cmd.Process.Kill()
	waitFor(t, "the child to be a zombie", 5*time.Second, func() bool {
		_, err := byName.Probe(ctx)
		return err != nil
	})
	if _, err := byPid.Probe(ctx); err == nil || !strings.Contains(err.Error(), "zombie") {
		t.Fatalf("pid file of a zombie = %v, want zombie", err)
	}
	cmd.Wait()
	waited = true
	if _, err := byPid.Probe(ctx); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("pid file of a reaped process = %v, want not running", err)
	}
	os.WriteFile(pidfile, []byte("garbage"), 0o644)
	if _, err := byPid.Probe(ctx); err == nil || !strings.Contains(err.Error(), "not a pid") {
		t.Fatalf("garbage pid file = %v", err)
	}
}

func TestExecCheck(t *testing.T) {
	dir := t.TempDir()
	ok := writeScript(t, dir, "ok.sh", "echo \"$1 $2 answered\"\n")
	bad := writeScript(t, dir, "bad.sh", "echo 'CRITICAL: 0 channels' >&2; exit 2\n")
	hang := writeScript(t, dir, "hang.sh", "sleep 300\n")
	ctx := testCtx(t)

	if out, err := mustCheck(t, spec("ok", "exec", map[string]string{"path": ok, "args": "core  show"})).Probe(ctx); err != nil || out != "core show answered" {
		t.Fatalf("ok script = %q, %v", out, err)
	}
	if _, err := mustCheck(t, spec("bad", "exec", map[string]string{"path": bad})).Probe(ctx); err == nil || err.Error() != "exit status 2: CRITICAL: 0 channels" {
		t.Fatalf("failing script = %v", err)
	}
	s := spec("hang", "exec", map[string]string{"path": hang})
	s.Timeout = 200 * time.Millisecond
	if _, err := mustCheck(t, s).Probe(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("hung script = %v, want ErrTimeout", err)
	}
}
