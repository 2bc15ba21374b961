package alert

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMailReachesTheRecipients sends a geo alert through the in-process
// SMTP server, in clear and with STARTTLS and AUTH PLAIN, and checks the
// envelope, the RFC 5322 headers and the body.
func TestMailReachesTheRecipients(t *testing.T) {
	for _, tc := range []struct {
		name     string
		starttls bool
	}{
		{"plain", false},
		{"starttls and auth plain", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mcfg Mail
			m := startSMTP(t, func(s *smtpServer) {
				if tc.starttls {
					srvTLS, cliTLS, _ := selfSigned(t)
					s.TLS, s.User, s.Pass = srvTLS, "alerts", "pa55"
					mcfg = Mail{StartTLS: true, TLS: cliTLS, Username: "alerts", Password: "pa55"}
				}
			})
			mcfg.Addr, mcfg.From, mcfg.To, mcfg.Helo = m.Addr, testFrom, []string{"noc@example.net", "oncall@example.org"}, "pbx-a1.example.net"
			log, _ := testLogger(t)
			s := newSender(t, Config{Deployment: "acme", Node: "pbx-a1", QueueDir: t.TempDir(), Mail: &mcfg}, log)
			when := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
			msgText := "The ticket moved to site b.\nConfirm or abort before 07:06 CET.\n.\nA line with only a dot, and Grüße."
			s.Send(Alert{ID: "m-1", Time: when, Site: "b", Kind: KindGeoPending, Severity: Critical,
				Subject: "Geo-Failover nach München", Message: msgText, By: "alice"})
			waitFor(t, 10*time.Second, "the message", func() bool { return len(m.Messages()) == 1 })

			got := m.Messages()[0]
			if got.From != testFrom || !slices.Equal(got.To, mcfg.To) {
				t.Errorf("envelope from %q to %v, want %q to %v", got.From, got.To, testFrom, mcfg.To)
			}
			if got.TLS != tc.starttls || (tc.starttls && got.AuthUser != "alerts") {
				t.Errorf("TLS = %v, auth = %q; want TLS %v with user alerts", got.TLS, got.AuthUser, tc.starttls)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(got.Data))
			if err != nil {
				t.Fatalf("message does not parse: %v", err)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if want := "[acme/b] geo-pending: Geo-Failover nach München"; err != nil || subject != want {
				t.Errorf("subject %q (%v), want %q", subject, err, want)
			}
			if d, err := msg.Header.Date(); err != nil || !d.Equal(when) {
				t.Errorf("Date %v (%v), want %v", d, err, when)
			}
			for k, want := range map[string]string{
				"Message-Id": "<m-1@example.net>", "From": testFrom, "To": "noc@example.net, oncall@example.org",
				"Auto-Submitted": "auto-generated", "X-Hatui-Site": "b", "X-Hatui-Kind": "geo-pending",
				"X-Hatui-Severity": "critical", "Content-Type": "text/plain; charset=utf-8", "Importance": "high",
			} {
				if v := msg.Header.Get(k); v != want {
					t.Errorf("header %s = %q, want %q", k, v, want)
				}
			}
			body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(body), "\r\n", "\n")
			for _, want := range []string{msgText + "\n\n-- \n", "site:       b\n", "by:         alice\n", "kind:       geo-pending\n", "time:       2026-03-04T04:06:07Z\n", "alert id:   m-1\n"} {
				if !strings.Contains(text, want) {
					t.Errorf("body lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

// TestStartTLSIsNeverSkipped: when STARTTLS is required and the server
// does not offer it, nothing is sent in clear.
func TestStartTLSIsNeverSkipped(t *testing.T) {
	m := startSMTP(t, func(s *smtpServer) { s.User, s.Pass = "alerts", "pa55" })
	log, buf := testLogger(t)
	s := newSender(t, Config{QueueDir: t.TempDir(), MaxAttempts: 1, Mail: &Mail{Addr: m.Addr, From: testFrom,
		To: []string{"noc@example.net"}, StartTLS: true, Username: "alerts", Password: "pa55"}}, log)
	s.Send(Alert{ID: "clear", Site: "a", Kind: KindGeoPending, Subject: "pending"})
	waitFor(t, 10*time.Second, "the alert to be given up", func() bool { return s.Status()[0].Dropped == 1 })
	if !strings.Contains(s.Status()[0].LastError, "does not offer STARTTLS") {
		t.Errorf("last error %q, want it to say the server does not offer STARTTLS", s.Status()[0].LastError)
	}
	if len(m.Messages()) != 0 {
		t.Errorf("a message was sent without TLS")
	}
	if len(buf.lines("alert dropped", "target=mail", "alert=clear", "STARTTLS")) != 1 {
		t.Errorf("no drop line naming the target, the alert and the reason")
	}
}

// TestSomeRecipientsRefused: the accepted recipients get the alert once;
// the refused one is an error, not a retry that would repeat it to the
// others.
func TestSomeRecipientsRefused(t *testing.T) {
	m := startSMTP(t, func(s *smtpServer) {
		s.RcptReply = func(to string) string {
			if to == "gone@example.net" {
				return "550 5.1.1 no such user"
			}
			return ""
		}
	})
	log, buf := testLogger(t)
	s := newSender(t, Config{QueueDir: t.TempDir(), Retry: 10 * time.Millisecond, Mail: &Mail{Addr: m.Addr, From: testFrom,
		To: []string{"noc@example.net", "gone@example.net"}}}, log)
	s.Send(Alert{ID: "p-1", Site: "a", Kind: KindGeoExpired, Subject: "expired"})
	s.Send(Alert{ID: "p-2", Site: "a", Kind: KindGeoExpired, Subject: "expired"})
	waitFor(t, 10*time.Second, "both messages", func() bool { return len(m.Messages()) >= 2 })
	if got := mailIDs(t, m.Messages()); !slices.Equal(got, []string{"p-1", "p-2"}) {
		t.Errorf("messages %v, want [p-1 p-2], each once", got)
	}
	for _, msg := range m.Messages() {
		if !slices.Equal(msg.To, []string{"noc@example.net"}) {
			t.Errorf("delivered to %v, want [noc@example.net]", msg.To)
		}
	}
	if l := buf.lines("level=ERROR", "not to everyone", "target=mail", "alert=p-1", "gone@example.net", "550 5.1.1"); len(l) != 1 {
		t.Errorf("%d error lines naming the refused recipient for p-1, want 1", len(l))
	}
	waitFor(t, 10*time.Second, "the status", func() bool { return s.Status()[0].Delivered == 2 })
}

var messageIDRE = regexp.MustCompile(`^<[!-~]+@[!-~]+>$`)

// FuzzFormatMail: whatever an alert holds, the message parses, has exactly
// the agent's headers (no field can add one), and the subject and body
// decode back to what was meant.
func FuzzFormatMail(f *testing.F) {
	f.Add("1.pbx-a1", "acme", "b", "geo-pending", "critical", "geo failover pending", "text\n.\nmore", "alice", int64(1760000000))
	f.Add("x", "d", "", "k", "info", "s\r\nBcc: victim@example.net", "m\r\n\r\nX-Evil: 1", "", int64(0))
	f.Add("a@b<c>", "dépl", "Zürich", "geo-expired", "warning", "=?utf-8?q?fake?= subject", "=3D already\r encoded", "bob\n", int64(253402300799))
	f.Add("", "", "", "", "", strings.Repeat("Ü", 300), strings.Repeat("line with trailing space \n", 50), "", int64(-5))
	f.Fuzz(func(t *testing.T, id, dep, site, kind, sev, subject, message, by string, unix int64) {
		unix = min(max(unix, 0), 253402300799) // years 1970 to 9999
		a := Alert{ID: id, Time: time.Unix(unix, 0).UTC(), Deployment: dep, Site: site, Kind: kind,
			Severity: sev, Subject: subject, Message: message, By: by}
		raw := formatMail(testFrom, []string{"noc@example.net"}, "example.net", a)
		for _, line := range strings.SplitAfter(string(raw), "\r\n") {
			if len(line) > 1000 {
				t.Fatalf("line of %d bytes, over the 998 limit", len(line))
			}
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("message does not parse: %v\n%q", err, raw)
		}
		var keys []string
		for k := range msg.Header {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"Auto-Submitted", "Content-Transfer-Encoding", "Content-Type", "Date", "From", "Message-Id",
			"Mime-Version", "Subject", "To", "X-Hatui-Kind", "X-Hatui-Severity", "X-Hatui-Site"}
		if sev == Critical {
			want = append(want, "Importance")
			slices.Sort(want)
		}
		if !slices.Equal(keys, want) {
			t.Fatalf("headers %v, want %v", keys, want)
		}
		if got := msg.Header.Get("Message-Id"); !messageIDRE.MatchString(got) {
			t.Fatalf("Message-ID %q is malformed", got)
		}
		if d, err := msg.Header.Date(); err != nil || !d.Equal(a.Time) {
			t.Fatalf("Date %v (%v), want %v", d, err, a.Time)
		}
		got, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		if wantSubj := mailSubject(a); err != nil || got != wantSubj {
			t.Fatalf("subject decodes to %q (%v), want %q", got, err, wantSubj)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
		if err != nil {
			t.Fatalf("body is not quoted-printable: %v", err)
		}
		norm := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n") }
		if norm(string(body)) != mailBody(a) {
			t.Fatalf("body decodes to %q, want %q", body, mailBody(a))
		}
	})
}
