package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Alerts configures where alerts (geo failovers, local failovers, fencing)
// are sent: the [alerts] section with its [[alerts.webhook]] tables and an
// optional [alerts.mail] table. No target means no alerts, only log lines.
//
//	[alerts]
//	retry        = "15s"
//	max_attempts = 30
//
//	[[alerts.webhook]]
//	name       = "noc"
//	url        = "https://noc.example.net/hooks/hatui"
//	token_file = "/etc/ha-agent/webhook.token"
//
//	[alerts.mail]
//	addr     = "smtp.example.net:587"
//	from     = "ha-agent@example.net"
//	to       = ["noc@example.net"]
//	starttls = true
type Alerts struct {
	// QueueDir keeps alerts not yet delivered to every target, one file
	// each, so that a restart does not lose them; "<state_dir>/alerts"
	// when empty.
	QueueDir string `toml:"queue_dir"`
	// Retry is the wait after a first failed delivery; it doubles with
	// each further failure, up to 5 minutes.
	Retry Duration `toml:"retry"`
	// MaxAttempts is how often one alert is tried on one target before it
	// is given up with an error in the log. The defaults (15 s, 30) keep
	// trying for a little over two hours: the default dead man's timer.
	MaxAttempts int `toml:"max_attempts"`
	// FlushTimeout is how long a stopping agent keeps delivering; what is
	// left waits on disk for the next start.
	FlushTimeout Duration `toml:"flush_timeout"`

	Webhooks []AlertWebhook `toml:"webhook"`
	// Mail is nil when there is no [alerts.mail] table.
	Mail *AlertMail `toml:"mail"`
}

// AlertWebhook is one [[alerts.webhook]] table: alerts are POSTed as JSON.
type AlertWebhook struct {
	// Name identifies the target in logs and status; the URL without its
	// query when empty. Queued alerts remember the targets that have them
	// by this name.
	Name string `toml:"name"`
	// URL is an http or https URL.
	URL string `toml:"url"`
	// Token is sent as "Authorization: Bearer <token>"; TokenFile holds
	// it instead, keeping the secret out of a shared config file.
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
	// Headers are added to every request.
	Headers map[string]string `toml:"headers"`
	// Timeout bounds one request; 10 s when unset.
	Timeout Duration `toml:"timeout"`
	// CAFile is a PEM file of the CAs to trust instead of the system's.
	CAFile string `toml:"ca_file"`
}

// AlertMail is the [alerts.mail] table: alerts are e-mailed through one
// SMTP server.
type AlertMail struct {
	// Addr is the server's host:port, e.g. "smtp.example.net:587".
	Addr string   `toml:"addr"`
	From string   `toml:"from"`
	To   []string `toml:"to"`
	// Helo is the name this node gives in EHLO; the host name when empty.
	Helo string `toml:"helo"`
	// StartTLS makes the connection encrypted before anything is sent; a
	// server that does not offer it is an error, never a silent fallback.
	StartTLS bool `toml:"starttls"`
	// Username and Password (or PasswordFile) log in with AUTH PLAIN,
	// which needs starttls unless the server is on this host.
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// Timeout bounds one whole SMTP conversation; 30 s when unset.
	Timeout Duration `toml:"timeout"`
	// CAFile is a PEM file of the CAs to trust for STARTTLS instead of
	// the system's.
	CAFile string `toml:"ca_file"`
}

// Alert defaults, applied by validation to unset keys.
const (
	DefaultAlertRetry        = 15 * time.Second
	DefaultAlertMaxAttempts  = 30
	DefaultAlertFlushTimeout = 5 * time.Second
	DefaultWebhookTimeout    = 10 * time.Second
	DefaultMailTimeout       = 30 * time.Second
)

// validate checks the [alerts] section and fills its defaults; c is the
// whole configuration, for the file name and the state directory.
func (a *Alerts) validate(c *Config) error {
	bad := func(key, problem, expected string) error {
		return &Error{File: c.File, Key: "alerts." + key, Problem: problem, Expected: expected}
	}
	if a.QueueDir == "" {
		a.QueueDir = filepath.Join(c.StateDir, "alerts")
	} else if !filepath.IsAbs(a.QueueDir) {
		return bad("queue_dir", fmt.Sprintf("%q is not an absolute path", a.QueueDir), "an absolute directory path such as /var/lib/ha-agent/alerts")
	}
	if a.Retry.Duration == 0 {
		a.Retry.Duration = DefaultAlertRetry
	}
	if a.Retry.Duration < time.Second || a.Retry.Duration > time.Hour {
		return bad("retry", fmt.Sprintf("%v is out of range", a.Retry.Duration), `a duration from 1s to 1h, such as "15s"`)
	}
	if a.MaxAttempts == 0 {
		a.MaxAttempts = DefaultAlertMaxAttempts
	}
	if a.MaxAttempts < 1 || a.MaxAttempts > 1000 {
		return bad("max_attempts", fmt.Sprintf("%d is out of range", a.MaxAttempts), "a whole number from 1 to 1000 (30 when unset)")
	}
	if a.FlushTimeout.Duration == 0 {
		a.FlushTimeout.Duration = DefaultAlertFlushTimeout
	}
	if a.FlushTimeout.Duration < 0 || a.FlushTimeout.Duration > time.Minute {
		return bad("flush_timeout", fmt.Sprintf("%v is out of range", a.FlushTimeout.Duration), `a duration up to 1m, such as "5s"`)
	}
	names := map[string]int{}
	for i := range a.Webhooks {
		w := &a.Webhooks[i]
		key := fmt.Sprintf("webhook[%d].", i)
		if err := w.validate(func(k, p, e string) error { return bad(key+k, p, e) }); err != nil {
			return err
		}
		name := w.TargetName()
		if j, ok := names[name]; ok {
			return bad(key+"name", fmt.Sprintf("%q is also the name of webhook[%d]", name, j),
				"a name for each webhook (one with the same URL needs its own name)")
		}
		names[name] = i
	}
	if a.Mail != nil {
		if err := a.Mail.validate(func(k, p, e string) error { return bad("mail."+k, p, e) }); err != nil {
			return err
		}
	}
	return nil
}

// Configured reports whether any target is configured.
func (a *Alerts) Configured() bool { return len(a.Webhooks) > 0 || a.Mail != nil }

// TargetName is the webhook's name in logs, status and the queue: Name,
// or the URL without credentials, query and fragment.
func (w *AlertWebhook) TargetName() string {
	if w.Name != "" {
		return w.Name
	}
	return RedactURL(w.URL)
}

// RedactURL returns raw without user information, query and fragment,
// which may hold secrets, for logs and status.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

func (w *AlertWebhook) validate(bad func(key, problem, expected string) error) error {
	const urlForm = `an http or https URL such as "https://noc.example.net/hooks/hatui"`
	if w.Name != "" && !nameRE.MatchString(w.Name) {
		return bad("name", fmt.Sprintf("%q is not a valid name", w.Name), nameForm)
	}
	if w.URL == "" {
		return bad("url", "missing", urlForm)
	}
	u, err := url.Parse(w.URL)
	if err != nil {
		return bad("url", fmt.Sprintf("%q is not a URL", RedactURL(w.URL)), urlForm)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("url", fmt.Sprintf("scheme %q is not http or https", u.Scheme), urlForm)
	}
	if u.Host == "" {
		return bad("url", fmt.Sprintf("%q has no host", RedactURL(w.URL)), urlForm)
	}
	if w.Token != "" && w.TokenFile != "" {
		return bad("token_file", "set together with token", "either token or token_file")
	}
	if strings.ContainsAny(w.Token, "\r\n") {
		return bad("token", "contains a line break", "the bearer token on one line")
	}
	if w.TokenFile != "" && !filepath.IsAbs(w.TokenFile) {
		return bad("token_file", fmt.Sprintf("%q is not an absolute path", w.TokenFile), "an absolute path such as /etc/ha-agent/webhook.token")
	}
	for k, v := range w.Headers {
		if !isHeaderName(k) {
			return bad("headers", fmt.Sprintf("%q is not a header name", k), "header names of letters, digits and '-', such as \"X-Team\"")
		}
		if strings.ContainsAny(v, "\r\n") {
			return bad("headers", fmt.Sprintf("the value of %q contains a line break", k), "header values on one line")
		}
		switch strings.ToLower(k) {
		case "content-type", "content-length", "host", "authorization":
			return bad("headers", fmt.Sprintf("%q is set by the agent", k), "other headers (use token for Authorization)")
		}
	}
	if w.Timeout.Duration == 0 {
		w.Timeout.Duration = DefaultWebhookTimeout
	}
	if w.Timeout.Duration < 100*time.Millisecond || w.Timeout.Duration > 5*time.Minute {
		return bad("timeout", fmt.Sprintf("%v is out of range", w.Timeout.Duration), `a duration from 100ms to 5m, such as "10s"`)
	}
	if w.CAFile != "" && !filepath.IsAbs(w.CAFile) {
		return bad("ca_file", fmt.Sprintf("%q is not an absolute path", w.CAFile), "an absolute path to a PEM file")
	}
	return nil
}

func (m *AlertMail) validate(bad func(key, problem, expected string) error) error {
	if m.Addr == "" {
		return bad("addr", "missing", "the SMTP server's host:port such as smtp.example.net:587")
	}
	if err := checkHostPort(m.Addr); err != nil {
		return bad("addr", err.Error(), "the SMTP server's host:port such as smtp.example.net:587")
	}
	host, port, _ := net.SplitHostPort(m.Addr)
	if host == "" || port == "0" {
		return bad("addr", fmt.Sprintf("%q needs a host and a port", m.Addr), "the SMTP server's host:port such as smtp.example.net:587")
	}
	const addrForm = "a bare e-mail address such as noc@example.net"
	checkAddr := func(key, s string) error {
		a, err := mail.ParseAddress(s)
		if err != nil || a.Name != "" || a.Address != s {
			return bad(key, fmt.Sprintf("%q is not an e-mail address", s), addrForm)
		}
		return nil
	}
	if m.From == "" {
		return bad("from", "missing", addrForm)
	}
	if err := checkAddr("from", m.From); err != nil {
		return err
	}
	if len(m.To) == 0 {
		return bad("to", "missing", "a list of e-mail addresses such as [\"noc@example.net\"]")
	}
	for i, to := range m.To {
		if err := checkAddr(fmt.Sprintf("to[%d]", i), to); err != nil {
			return err
		}
	}
	if m.Helo != "" && !nameRE.MatchString(m.Helo) {
		return bad("helo", fmt.Sprintf("%q is not a host name", m.Helo), "this node's host name such as pbx-a1.example.net")
	}
	if m.Password != "" && m.PasswordFile != "" {
		return bad("password_file", "set together with password", "either password or password_file")
	}
	if (m.Password != "" || m.PasswordFile != "") && m.Username == "" {
		return bad("username", "missing while a password is set", "the SMTP login name")
	}
	if m.Username != "" && !m.StartTLS && !isLoopback(host) {
		return bad("starttls", "false while username is set: the password would cross the network in clear",
			"starttls = true (or no username)")
	}
	if m.PasswordFile != "" && !filepath.IsAbs(m.PasswordFile) {
		return bad("password_file", fmt.Sprintf("%q is not an absolute path", m.PasswordFile), "an absolute path such as /etc/ha-agent/smtp.password")
	}
	if m.CAFile != "" && !filepath.IsAbs(m.CAFile) {
		return bad("ca_file", fmt.Sprintf("%q is not an absolute path", m.CAFile), "an absolute path to a PEM file")
	}
	if m.CAFile != "" && !m.StartTLS {
		return bad("ca_file", "set while starttls is false", "starttls = true, or no ca_file")
	}
	if m.Timeout.Duration == 0 {
		m.Timeout.Duration = DefaultMailTimeout
	}
	if m.Timeout.Duration < 100*time.Millisecond || m.Timeout.Duration > 5*time.Minute {
		return bad("timeout", fmt.Sprintf("%v is out of range", m.Timeout.Duration), `a duration from 100ms to 5m, such as "30s"`)
	}
	return nil
}

// isLoopback reports whether host is one that net/smtp lets AUTH PLAIN
// reach without TLS.
func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// isHeaderName reports whether s is a plain HTTP header name.
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
