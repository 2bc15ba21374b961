package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"
	"unicode"
)

// mailer e-mails alerts through one SMTP server.
type mailer struct {
	cfg  Mail
	host string // Addr's host: the name PlainAuth and TLS check
	// domain is the right side of Message-ID: the From address's domain.
	domain string
}

func newMailer(m Mail) (*mailer, error) {
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("%q is not the SMTP server's host:port", m.Addr)
	}
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return nil, fmt.Errorf("from %q is not an e-mail address", m.From)
	}
	if len(m.To) == 0 {
		return nil, errors.New("no recipient (to)")
	}
	for _, to := range m.To {
		if _, err := mail.ParseAddress(to); err != nil || strings.ContainsAny(to, "<>\r\n") {
			return nil, fmt.Errorf("to %q is not an e-mail address", to)
		}
	}
	if m.Timeout == 0 {
		m.Timeout = DefaultMailTimeout
	}
	if m.Helo == "" {
		m.Helo, _ = os.Hostname()
		if m.Helo == "" {
			m.Helo = "localhost"
		}
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	return &mailer{cfg: m, host: host, domain: domain}, nil
}

func (m *mailer) close() {}

// deliver holds one SMTP conversation. It reports the server's refusals
// with their codes.
func (m *mailer) deliver(ctx context.Context, a Alert) (err error) {
	msg := formatMail(m.cfg.From, m.cfg.To, m.domain, a)
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("connecting to SMTP server %s: %w", m.cfg.Addr, err)
	}
	// The deadline bounds every read and write; closing on cancel cuts a
	// conversation off when the sender stops.
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP server %s: reading its greeting: %w", m.cfg.Addr, err)
	}
	defer c.Close()
	step := func(what string, err error) error {
		if err == nil {
			return nil
		}
		return fmt.Errorf("SMTP server %s: %s: %w", m.cfg.Addr, what, smtpError(err))
	}
	if err := step("EHLO", c.Hello(m.cfg.Helo)); err != nil {
		return err
	}
	if m.cfg.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("SMTP server %s does not offer STARTTLS, which the configuration requires", m.cfg.Addr)
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if m.cfg.TLS != nil {
			tc = m.cfg.TLS.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = m.host
		}
		if err := step("STARTTLS", c.StartTLS(tc)); err != nil {
			return err
		}
	}
	if m.cfg.Username != "" {
		if err := step("AUTH PLAIN as "+m.cfg.Username, c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.host))); err != nil {
			return err
		}
	}
	if err := step("MAIL FROM:<"+m.cfg.From+">", c.Mail(m.cfg.From)); err != nil {
		return err
	}
	var refused []string
	for _, to := range m.cfg.To {
		err := c.Rcpt(to)
		if err == nil {
			continue
		}
		var te *textproto.Error
		if !errors.As(err, &te) {
			return step("RCPT TO:<"+to+">", err) // the connection broke
		}
		refused = append(refused, fmt.Sprintf("<%s> (%v)", to, smtpError(err)))
	}
	if len(refused) == len(m.cfg.To) {
		return fmt.Errorf("SMTP server %s refused every recipient: %s", m.cfg.Addr, strings.Join(refused, ", "))
	}
	w, err := c.Data()
	if err := step("DATA", err); err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return step("sending the message", err)
	}
	// Close reads the server's verdict on the message itself.
	if err := step("end of DATA", w.Close()); err != nil {
		return err
	}
	// The message is accepted: a failed QUIT changes nothing.
	c.Quit()
	if len(refused) > 0 {
		return &partialError{fmt.Errorf("SMTP server %s refused some recipients, who do not get the alert: %s",
			m.cfg.Addr, strings.Join(refused, ", "))}
	}
	return nil
}

// replyError is an SMTP reply as the server wrote it ("550 5.1.1 no such
// user"), which is what a mail administrator searches for.
type replyError struct{ te *textproto.Error }

func (e replyError) Error() string { return fmt.Sprintf("%03d %s", e.te.Code, e.te.Msg) }
func (e replyError) Unwrap() error { return e.te }

// smtpError shows a server's reply verbatim; other errors pass unchanged.
func smtpError(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return replyError{te}
	}
	return err
}

// formatMail renders a as an RFC 5322 message with CRLF line ends: plain
// text, UTF-8, quoted-printable (no 8BITMIME needed). Header values are
// made single-line, so no field of an alert can add a header.
func formatMail(from string, to []string, domain string, a Alert) []byte {
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("Date", a.Time.Format(time.RFC1123Z))
	h("From", from)
	h("To", strings.Join(to, ", "))
	h("Message-ID", "<"+messageIDPart(a.ID)+"@"+messageIDPart(domain)+">")
	h("Subject", encodeSubject(mailSubject(a)))
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834: vacation responders must not answer.
	h("Auto-Submitted", "auto-generated")
	h("X-Hatui-Kind", headerToken(a.Kind))
	h("X-Hatui-Site", headerToken(a.Site))
	h("X-Hatui-Severity", headerToken(a.Severity))
	if a.Severity == Critical {
		h("Importance", "high")
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(mailBody(a)))
	qp.Close()
	return b.Bytes()
}

// mailSubject is the subject line before encoding: site id and kind first,
// where a glance at the inbox finds them.
func mailSubject(a Alert) string {
	var parts []string
	for _, p := range []string{a.Deployment, a.Site} {
		if p != "" {
			parts = append(parts, oneLine(p))
		}
	}
	where := strings.Join(parts, "/")
	if where == "" {
		where = "hatui"
	}
	// Trimmed: a header value's edges are not kept by readers.
	s := strings.TrimSpace(fmt.Sprintf("[%s] %s: %s", where, oneLine(a.Kind), oneLine(a.Subject)))
	// A literal "=?" would be read back as the start of an encoded word.
	s = strings.ReplaceAll(s, "=?", "= ?")
	if r := []rune(s); len(r) > 200 {
		s = strings.TrimSpace(string(r[:199])) + "…"
	}
	return s
}

// encodeSubject encodes a subject with non-ASCII characters as RFC 2047
// words, one per folded line, so that the header stays within the line
// length limit.
func encodeSubject(s string) string {
	enc := mime.QEncoding.Encode("utf-8", s)
	if enc == s {
		return s
	}
	return strings.ReplaceAll(enc, "?= =?", "?=\r\n =?")
}

// mailBody is the text: the message, then every field for whoever reads
// it without the console.
func mailBody(a Alert) string {
	var b strings.Builder
	// Line breaks become LF here and CRLF in the quoted-printable writer,
	// which mishandles a CR that is not followed by LF.
	text := strings.ReplaceAll(strings.ReplaceAll(a.Message, "\r\n", "\n"), "\r", "\n")
	b.WriteString(strings.TrimRight(text, "\n\t "))
	b.WriteString("\n\n-- \n")
	by := a.By
	if by == "" {
		by = "(the agent itself)"
	}
	for _, f := range [][2]string{
		{"deployment", a.Deployment}, {"site", a.Site}, {"node", a.Node}, {"kind", a.Kind},
		{"severity", a.Severity}, {"by", by}, {"time", a.Time.UTC().Format(time.RFC3339)}, {"alert id", a.ID},
	} {
		fmt.Fprintf(&b, "%-11s %s\n", f[0]+":", oneLine(f[1]))
	}
	return b.String()
}

// oneLine replaces control characters (line breaks above all) with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// headerToken keeps what may stand unencoded in a header: printable ASCII.
func headerToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
}

// messageIDPart keeps what a Message-ID's halves may hold (dot-atom text).
func messageIDPart(s string) string {
	s = strings.Map(func(r rune) rune {
		if r > ' ' && r <= '~' && !strings.ContainsRune(`()<>[]:;@\,"`, r) {
			return r
		}
		return '_'
	}, s)
	s = strings.Trim(s, ".")
	if s == "" {
		return "hatui"
	}
	return s
}
