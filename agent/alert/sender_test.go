package alert

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testFrom = "ha-agent@example.net"

// mailIDs returns the alert ids of the messages, from their Message-ID.
func mailIDs(t *testing.T, msgs []smtpMessage) []string {
	t.Helper()
	var ids []string
	for _, m := range msgs {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatalf("message does not parse: %v\n%s", err, m.Data)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(msg.Header.Get("Message-ID"), "<"), "@example.net>")
		ids = append(ids, id)
	}
	return ids
}

func alertIDs(as []Alert) []string {
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids
}

func TestWebhookPostsTheDocumentedBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{
		{"http", false},
		{"https with its own CA", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hook{}
			var srv *httptest.Server
			var tc2 *tls.Config
			if tc.tls {
				srv = httptest.NewTLSServer(h)
				t.Cleanup(srv.Close)
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				tc2 = &tls.Config{RootCAs: pool}
			} else {
				srv = startHook(t, h)
			}
			log, _ := testLogger(t)
			dir := t.TempDir()
			s := newSender(t, Config{
				Deployment: "acme", Node: "pbx-a1", QueueDir: dir, Retry: 20 * time.Millisecond,
				Webhooks: []Webhook{{Name: "noc", URL: srv.URL + "/hooks/hatui?key=secret", Token: "s3cret",
					Headers: map[string]string{"X-Team": "voice"}, TLS: tc2}},
			}, log)
			when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
			s.Send(Alert{Time: when, Site: "b", Kind: KindGeoPending, Severity: Critical,
				Subject: "geo failover to site b pending", Message: "confirm or abort before 05:04", By: "alice"})
			waitFor(t, 10*time.Second, "the webhook to receive the alert", func() bool { return len(h.requests()) == 1 })

			r := h.requests()[0]
			var keys []string
			for k := range r.Raw {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if want := []string{"by", "deployment", "id", "kind", "message", "node", "severity", "site", "subject", "time"}; !slices.Equal(keys, want) {
				t.Errorf("body keys = %v, want %v", keys, want)
			}
			for k, want := range map[string]string{
				"deployment": "acme", "node": "pbx-a1", "site": "b", "kind": "geo-pending", "severity": "critical",
				"subject": "geo failover to site b pending", "message": "confirm or abort before 05:04", "by": "alice",
				"time": "2026-01-02T03:04:05.000000006Z",
			} {
				if r.Raw[k] != want {
					t.Errorf("body %s = %v, want %q", k, r.Raw[k], want)
				}
			}
			if id, _ := r.Raw["id"].(string); !strings.HasSuffix(id, ".pbx-a1") {
				t.Errorf("body id = %v, want <seq>.pbx-a1", r.Raw["id"])
			}
			for k, want := range map[string]string{"Content-Type": "application/json", "Authorization": "Bearer s3cret", "X-Team": "voice"} {
				if got := r.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			waitFor(t, 10*time.Second, "the queue to empty", func() bool { return len(queueFiles(t, dir)) == 0 })
			st := s.Status()
			if len(st) != 1 || st[0].Target != "webhook:noc" || st[0].Address != srv.URL+"/hooks/hatui" ||
				st[0].Queued != 0 || st[0].Delivered != 1 || st[0].LastSuccess.IsZero() || st[0].LastError != "" {
				t.Errorf("status = %+v, want webhook:noc at %s (no query) with one delivery and no error", st, srv.URL+"/hooks/hatui")
			}
		})
	}
}

// TestBadRepliesAreLoggedAndRetried: a refusing target (HTTP 500, SMTP
// 550) gets a clear error line per failure naming target and alert, the
// alert is retried until delivered exactly once, and the sender goes on.
func TestBadRepliesAreLoggedAndRetried(t *testing.T) {
	type target struct {
		cfg       func(*Config)
		delivered func() []string // ids
		attempts  func() int
	}
	for _, tc := range []struct {
		name       string
		target     func(t *testing.T) target
		targetName string
		want       string // in every failure line and in the status
	}{
		{"webhook HTTP 500", func(t *testing.T) target {
			h := &hook{Reply: func(_ Alert, n int) int {
				if n <= 2 {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			}}
			srv := startHook(t, h)
			return target{
				cfg:       func(c *Config) { c.Webhooks = []Webhook{{Name: "noc", URL: srv.URL}} },
				delivered: func() []string { return alertIDs(h.delivered()) },
				attempts:  func() int { return len(h.requests()) },
			}
		}, "webhook:noc", "answered HTTP 500 Internal Server Error: hook says no"},
		{"SMTP 550 for the recipient", func(t *testing.T) target {
			var rcpts atomic.Int32
			m := startSMTP(t, func(s *smtpServer) {
				s.RcptReply = func(string) string {
					if rcpts.Add(1) <= 2 {
						return "550 5.1.1 mailbox unavailable"
					}
					return ""
				}
			})
			return target{
				cfg:       func(c *Config) { c.Mail = &Mail{Addr: m.Addr, From: testFrom, To: []string{"noc@example.net"}} },
				delivered: func() []string { return mailIDs(t, m.Messages()) },
				attempts:  func() int { return int(rcpts.Load()) },
			}
		}, "mail", "refused every recipient: <noc@example.net> (550 5.1.1 mailbox unavailable)"},
		{"SMTP 550 at the end of DATA", func(t *testing.T) target {
			var datas atomic.Int32
			m := startSMTP(t, func(s *smtpServer) {
				s.DataReply = func(n int) string {
					datas.Store(int32(n))
					if n <= 2 {
						return "550 5.7.1 message refused"
					}
					return ""
				}
			})
			return target{
				cfg:       func(c *Config) { c.Mail = &Mail{Addr: m.Addr, From: testFrom, To: []string{"noc@example.net"}} },
				delivered: func() []string { return mailIDs(t, m.Messages()) },
				attempts:  func() int { return int(datas.Load()) },
			}
		}, "mail", "end of DATA: 550 5.7.1 message refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.target(t)
			log, buf := testLogger(t)
			cfg := Config{Deployment: "acme", Node: "pbx-a1", QueueDir: t.TempDir(), Retry: 20 * time.Millisecond, MaxAttempts: 10}
			tg.cfg(&cfg)
			s := newSender(t, cfg, log)
			s.Send(Alert{ID: "first", Site: "b", Kind: KindGeoConfirmed, Subject: "confirmed"})
			waitFor(t, 20*time.Second, "the alert to get through", func() bool { return len(tg.delivered()) == 1 })
			if n := tg.attempts(); n != 3 {
				t.Errorf("%d attempts, want 3 (two refusals, then success)", n)
			}
			fails := buf.lines("alert delivery failed; retrying", "target="+tc.targetName, "alert=first", "kind=geo-confirmed", "site=b")
			if len(fails) != 2 {
				t.Errorf("%d failure lines naming target and alert, want 2", len(fails))
			}
			for _, l := range fails {
				if !strings.Contains(l, tc.want) || !strings.Contains(l, "level=ERROR") {
					t.Errorf("failure line %q is not an error saying %q", l, tc.want)
				}
			}
			waitFor(t, 10*time.Second, "the status to show the delivery", func() bool { return s.Status()[0].Delivered == 1 })
			st := s.Status()[0]
			if !strings.Contains(st.LastError, tc.want) || !st.LastSuccess.After(st.LastErrorTime) {
				t.Errorf("status = %+v, want the last error %q and a later success", st, tc.want)
			}
			// The sender carries on.
			s.Send(Alert{ID: "second", Site: "b", Kind: KindGeoExpired, Subject: "expired"})
			waitFor(t, 20*time.Second, "the next alert", func() bool { return len(tg.delivered()) == 2 })
			if got := tg.delivered(); !slices.Equal(got, []string{"first", "second"}) {
				t.Errorf("delivered %v, want [first second]", got)
			}
		})
	}
}

// TestGivesUpAfterMaxAttempts: an alert a target keeps refusing is tried
// MaxAttempts times, then dropped with an error line naming target and
// alert; the alerts after it still go out.
func TestGivesUpAfterMaxAttempts(t *testing.T) {
	h := &hook{Reply: func(a Alert, _ int) int {
		if a.ID == "doomed" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}}
	srv := startHook(t, h)
	log, buf := testLogger(t)
	dir := t.TempDir()
	s := newSender(t, Config{QueueDir: dir, Retry: 10 * time.Millisecond, MaxAttempts: 3,
		Webhooks: []Webhook{{URL: srv.URL + "/hook"}}}, log)
	s.Send(Alert{ID: "doomed", Site: "a", Kind: KindGeoAborted, Subject: "aborted by alice"})
	s.Send(Alert{ID: "next", Site: "a", Kind: KindGeoPending, Subject: "pending again"})
	waitFor(t, 20*time.Second, "the next alert", func() bool { return len(h.delivered()) == 1 })

	var doomed int
	for _, r := range h.requests() {
		if r.Alert.ID == "doomed" {
			doomed++
		}
	}
	if doomed != 3 {
		t.Errorf("the refused alert was tried %d times, want MaxAttempts = 3", doomed)
	}
	target := "target=webhook:" + srv.URL + "/hook"
	if l := buf.lines("level=ERROR", "alert dropped", target, "alert=doomed", `subject="aborted by alice"`, "attempts=3", "503"); len(l) != 1 {
		t.Errorf("%d drop lines naming target and alert, want 1", len(l))
	}
	waitFor(t, 10*time.Second, "the queue to empty", func() bool { return len(queueFiles(t, dir)) == 0 })
	if st := s.Status()[0]; st.Dropped != 1 || st.Delivered != 1 || st.Queued != 0 {
		t.Errorf("status = %+v, want one dropped, one delivered, none queued", st)
	}
}

// TestDeliversInOrderPerTarget: alerts reach each target in the order they
// were sent, exactly once each, even when the targets refuse some tries.
func TestDeliversInOrderPerTarget(t *testing.T) {
	h := &hook{Reply: func(_ Alert, n int) int {
		if n%3 == 1 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	}}
	srv := startHook(t, h)
	m := startSMTP(t, func(s *smtpServer) {
		s.DataReply = func(n int) string {
			if n%4 == 2 {
				return "451 4.3.0 try again later"
			}
			return ""
		}
	})
	log, _ := testLogger(t)
	s := newSender(t, Config{Node: "pbx-a1", QueueDir: t.TempDir(), Retry: 5 * time.Millisecond, MaxAttempts: 10,
		Webhooks: []Webhook{{Name: "noc", URL: srv.URL}},
		Mail:     &Mail{Addr: m.Addr, From: testFrom, To: []string{"noc@example.net", "oncall@example.net"}}}, log)
	var want []string
	for i := range 30 {
		id := "o-" + string(rune('a'+i/10)) + string(rune('0'+i%10))
		want = append(want, id)
		s.Send(Alert{ID: id, Site: "a", Kind: "test", Subject: id})
	}
	waitFor(t, 60*time.Second, "every alert at both targets", func() bool {
		return len(h.delivered()) >= 30 && len(m.Messages()) >= 30
	})
	if got := alertIDs(h.delivered()); !slices.Equal(got, want) {
		t.Errorf("webhook order %v, want %v", got, want)
	}
	if got := mailIDs(t, m.Messages()); !slices.Equal(got, want) {
		t.Errorf("mail order %v, want %v", got, want)
	}
	for _, msg := range m.Messages() {
		if !slices.Equal(msg.To, []string{"noc@example.net", "oncall@example.net"}) || msg.From != testFrom {
			t.Fatalf("envelope from %q to %v, want %s to both recipients", msg.From, msg.To, testFrom)
		}
	}
}

// TestQueueSurvivesRestart: an alert for a webhook that is down stays on
// disk through Close; the next sender delivers it once when the webhook
// is up, and does not send it again to the mail target that already had it.
func TestQueueSurvivesRestart(t *testing.T) {
	port := reservePort(t)
	m := startSMTP(t, nil)
	dir := t.TempDir()
	cfg := Config{Deployment: "acme", Node: "pbx-a1", QueueDir: dir,
		// A long retry: Close must not wait it out.
		Retry: time.Minute, MaxAttempts: 5, FlushTimeout: 3 * time.Second,
		Webhooks: []Webhook{{Name: "noc", URL: "http://" + port.Addr + "/hook", Timeout: 2 * time.Second}},
		Mail:     &Mail{Addr: m.Addr, From: testFrom, To: []string{"noc@example.net"}, Helo: "pbx-a1"},
	}
	log1, buf1 := testLogger(t)
	s1, err := New(cfg, log1)
	if err != nil {
		t.Fatal(err)
	}
	s1.Send(Alert{ID: "r-1", Site: "b", Kind: KindGeoPending, Severity: Critical, Subject: "pending"})
	waitFor(t, 10*time.Second, "the mail", func() bool { return len(m.Messages()) == 1 })
	waitFor(t, 10*time.Second, "the webhook to fail", func() bool {
		return strings.Contains(s1.Status()[0].LastError, "connection refused")
	})
	waitFor(t, 10*time.Second, "the mail delivery to be recorded", func() bool {
		files := queueFiles(t, dir)
		if len(files) != 1 {
			return false
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			return false
		}
		r, err := decodeRecord(b)
		return err == nil && slices.Equal(r.Done, []string{"mail"})
	})
	if st := s1.Status(); st[0].Queued != 1 || st[1].Queued != 0 {
		t.Errorf("status = %+v, want one alert queued for the webhook, none for mail", st)
	}
	start := time.Now()
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	took := time.Since(start)
	t.Logf("Close with the webhook in backoff took %v", took)
	if took >= cfg.FlushTimeout {
		t.Errorf("Close took %v: it waited for the retry instead of leaving the alert on disk", took)
	}
	if len(buf1.lines("stay queued for the next start", "count=1")) != 1 {
		t.Errorf("Close did not say that an alert stays queued")
	}
	if n := len(queueFiles(t, dir)); n != 1 {
		t.Fatalf("%d queue files after Close, want 1", n)
	}

	// The webhook comes up on the same address; the agent restarts.
	h := &hook{}
	hs := &http.Server{Handler: h}
	go hs.Serve(port.listen(t))
	t.Cleanup(func() { hs.Close() })
	log2, buf2 := testLogger(t)
	s2 := newSender(t, cfg, log2)
	waitFor(t, 10*time.Second, "the queued alert", func() bool { return len(h.delivered()) == 1 })
	s2.Send(Alert{ID: "r-2", Site: "b", Kind: KindGeoConfirmed, Subject: "confirmed"})
	waitFor(t, 10*time.Second, "the second alert at both targets", func() bool {
		return len(h.delivered()) == 2 && len(m.Messages()) == 2
	})
	if got := alertIDs(h.delivered()); !slices.Equal(got, []string{"r-1", "r-2"}) {
		t.Errorf("webhook got %v, want [r-1 r-2]: the queued alert once, before the new one", got)
	}
	if got := mailIDs(t, m.Messages()); !slices.Equal(got, []string{"r-1", "r-2"}) {
		t.Errorf("mail got %v, want [r-1 r-2]: the restart must not mail r-1 again", got)
	}
	if len(buf2.lines("re-queued alerts from an earlier run", "count=1")) != 1 {
		t.Errorf("New did not say it re-queued the alert")
	}
	waitFor(t, 10*time.Second, "the queue to empty", func() bool { return len(queueFiles(t, dir)) == 0 })
}

// TestSendNeverBlocks: with a target that hangs, Send still returns at
// once with the alert on disk, and Close returns after the flush timeout,
// leaving the alerts queued.
func TestSendNeverBlocks(t *testing.T) {
	var started atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	dir := t.TempDir()
	log, _ := testLogger(t)
	const flush = 300 * time.Millisecond
	s := newSender(t, Config{QueueDir: dir, FlushTimeout: flush, Webhooks: []Webhook{{URL: srv.URL, Timeout: time.Minute}}}, log)

	const n = 20
	start := time.Now()
	for i := range n {
		s.Send(Alert{Site: "a", Kind: "test", Subject: "alert " + string(rune('a'+i))})
		// Each alert is on disk when Send returns.
		if got := len(queueFiles(t, dir)); got != i+1 {
			t.Fatalf("after Send %d: %d queue files, want %d", i+1, got, i+1)
		}
	}
	t.Logf("%d Sends (each with two fsyncs) took %v while the target hung", n, time.Since(start))
	waitFor(t, 10*time.Second, "the worker to be stuck in the first request", func() bool { return started.Load() == 1 })
	if q := s.Status()[0].Queued; q != n {
		t.Errorf("queued = %d, want %d", q, n)
	}
	start = time.Now()
	s.Close()
	took := time.Since(start)
	t.Logf("Close with a request hanging took %v (flush timeout %v)", took, flush)
	if took < flush || took > flush+5*time.Second {
		t.Errorf("Close took %v, want about the flush timeout %v", took, flush)
	}
	if got := len(queueFiles(t, dir)); got != n {
		t.Errorf("%d queue files after Close, want all %d kept", got, n)
	}
	// After Close an alert still reaches the disk, for the next start.
	s.Send(Alert{Site: "a", Kind: "test", Subject: "late"})
	if got := len(queueFiles(t, dir)); got != n+1 {
		t.Errorf("%d queue files after a Send after Close, want %d", got, n+1)
	}
}

// TestUnreadableQueueFileIsSetAside: a torn or foreign file in the queue
// does not stop the sender; it is renamed .bad with an error line, and the
// good files are delivered.
func TestUnreadableQueueFileIsSetAside(t *testing.T) {
	dir := t.TempDir()
	good := `{"version":1,"alert":{"id":"kept","site":"a","kind":"geo-expired","subject":"expired"}}`
	for name, data := range map[string]string{
		"00000000000000000001.json": `{"version":1,"alert":{"id":"to`, // torn
		"00000000000000000002.json": good,
		"00000000000000000003.json": `{"version":7,"alert":{"id":"future"}}`,
		".tmp-123456":               `{"version":1`, // a write cut off by a crash
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := &hook{}
	srv := startHook(t, h)
	log, buf := testLogger(t)
	newSender(t, Config{QueueDir: dir, Webhooks: []Webhook{{URL: srv.URL}}}, log)
	waitFor(t, 10*time.Second, "the readable alert", func() bool { return len(h.delivered()) == 1 })
	if got := h.delivered()[0].ID; got != "kept" {
		t.Errorf("delivered %q, want kept", got)
	}
	for _, name := range []string{"00000000000000000001.json.bad", "00000000000000000003.json.bad"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not set aside: %v", name, err)
		}
		if len(buf.lines("level=ERROR", "unreadable file set aside", name)) != 1 {
			t.Errorf("no error line naming %s", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123456")); !os.IsNotExist(err) {
		t.Errorf("leftover temporary file not removed: %v", err)
	}
	waitFor(t, 10*time.Second, "the queue to empty", func() bool { return len(queueFiles(t, dir)) == 0 })
}

func TestNewRefusesBadTargets(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no queue dir", Config{Webhooks: []Webhook{{URL: "http://127.0.0.1:1/"}}}, "no queue directory"},
		{"bad url", Config{QueueDir: "/tmp/x", Webhooks: []Webhook{{URL: "ftp://example.net/"}}}, "not an http or https URL"},
		{"bad header", Config{QueueDir: "/tmp/x", Webhooks: []Webhook{{URL: "http://a/", Headers: map[string]string{"X-A": "1\r\nX-B: 2"}}}}, "one-line value"},
		{"same name", Config{QueueDir: "/tmp/x", Webhooks: []Webhook{{URL: "http://a/"}, {URL: "http://a/"}}}, "two targets are called"},
		{"no recipient", Config{QueueDir: "/tmp/x", Mail: &Mail{Addr: "127.0.0.1:25", From: testFrom}}, "no recipient"},
		{"no port", Config{QueueDir: "/tmp/x", Mail: &Mail{Addr: "mail.example.net", From: testFrom, To: []string{"a@b"}}}, "host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	s := &Sender{cfg: Config{Retry: 15 * time.Second}}
	var got []time.Duration
	var total time.Duration
	for a := 1; a < DefaultMaxAttempts; a++ {
		got = append(got, s.backoff(a))
		total += s.backoff(a)
	}
	if want := []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute}; !slices.Equal(got[:6], want) {
		t.Errorf("backoff starts %v, want %v", got[:6], want)
	}
	// The defaults keep trying past the default dead man's timer (2 h).
	if total < 2*time.Hour {
		t.Errorf("default retries span %v, want more than 2h", total)
	}
	long := &Sender{cfg: Config{Retry: 10 * time.Minute}}
	if d := long.backoff(5); d != 10*time.Minute {
		t.Errorf("backoff with a retry above the cap = %v, want the retry itself", d)
	}
}
