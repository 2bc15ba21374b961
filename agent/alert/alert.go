package alert

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/config"
)

// Alert is one notification.
type Alert struct {
	// ID identifies the alert across retries and restarts; Send sets it
	// when empty.
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Deployment string    `json:"deployment"`
	// Site is the site the alert is about (required for geo alerts).
	Site string `json:"site"`
	// Node is the node that raised it.
	Node string `json:"node"`
	// Kind says what happened, e.g. [KindGeoPending].
	Kind string `json:"kind"`
	// Severity is [Info], [Warning] or [Critical].
	Severity string `json:"severity"`
	// Subject is one line.
	Subject string `json:"subject"`
	// Message is the full text: who did it, the timer's expiry, what to do.
	Message string `json:"message"`
	// By is the operator who acted, "" for the machine.
	By string `json:"by"`
}

// Alert kinds. Other subsystems add their own ("failover-...", "fence-...").
const (
	KindGeoPending   = "geo-pending"   // the ticket moved: the dead man's timer started
	KindGeoConfirmed = "geo-confirmed" // an operator confirmed the failover
	KindGeoAborted   = "geo-aborted"   // an operator aborted it
	KindGeoExpired   = "geo-expired"   // the timer ran out: the service moves by itself
)

// Severities.
const (
	Info     = "info"
	Warning  = "warning"
	Critical = "critical"
)

// Config says where alerts go and how hard the sender tries.
type Config struct {
	// Deployment and Node fill alerts that leave them empty.
	Deployment string
	Node       string

	Webhooks []Webhook
	// Mail is nil for no e-mail.
	Mail *Mail

	// Retry is the wait after the first failed delivery; it doubles with
	// each further failure, up to 5 minutes (or Retry, if longer). 15 s
	// when zero.
	Retry time.Duration
	// MaxAttempts is how often one alert is tried on one target before it
	// is given up; 30 when zero.
	MaxAttempts int
	// QueueDir holds alerts not yet delivered to every target. Required
	// when there is a target.
	QueueDir string
	// FlushTimeout is how long Close keeps delivering; 5 s when zero.
	FlushTimeout time.Duration
}

// Webhook is a target that receives alerts as JSON by HTTP POST.
type Webhook struct {
	// Name identifies the target in logs, status and the queue files; the
	// URL without credentials and query when empty.
	Name string
	URL  string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// Headers are added to every request.
	Headers map[string]string
	// Timeout bounds one request; 10 s when zero.
	Timeout time.Duration
	// TLS configures https (trusted CAs); nil uses the system's roots.
	TLS *tls.Config
}

// Mail is a target that e-mails alerts through one SMTP server.
type Mail struct {
	// Addr is the server's host:port.
	Addr string
	From string
	To   []string
	// Helo is the name given in EHLO; the host name when empty.
	Helo string
	// StartTLS requires the connection to be encrypted before anything
	// is sent.
	StartTLS bool
	// TLS configures STARTTLS (trusted CAs); ServerName defaults to
	// Addr's host.
	TLS *tls.Config
	// Username and Password log in with AUTH PLAIN when Username is set.
	Username, Password string
	// Timeout bounds one whole SMTP conversation; 30 s when zero.
	Timeout time.Duration
}

// FromConfig builds the sender's configuration from the node's [alerts]
// section, reading the token, password and CA files it names.
func FromConfig(c *config.Config) (Config, error) {
	a := &c.Alerts
	out := Config{
		Deployment:   c.Deployment,
		Node:         c.Node,
		Retry:        a.Retry.Duration,
		MaxAttempts:  a.MaxAttempts,
		QueueDir:     a.QueueDir,
		FlushTimeout: a.FlushTimeout.Duration,
	}
	for i, w := range a.Webhooks {
		key := fmt.Sprintf("alerts.webhook[%d]", i)
		hook := Webhook{Name: w.TargetName(), URL: w.URL, Token: w.Token, Headers: w.Headers, Timeout: w.Timeout.Duration}
		if w.TokenFile != "" {
			tok, err := readSecret(w.TokenFile)
			if err != nil {
				return Config{}, fmt.Errorf("reading %s.token_file: %w", key, err)
			}
			hook.Token = tok
		}
		if w.CAFile != "" {
			t, err := tlsWithCAs(w.CAFile)
			if err != nil {
				return Config{}, fmt.Errorf("reading %s.ca_file: %w", key, err)
			}
			hook.TLS = t
		}
		out.Webhooks = append(out.Webhooks, hook)
	}
	if m := a.Mail; m != nil {
		mail := &Mail{Addr: m.Addr, From: m.From, To: m.To, Helo: m.Helo, StartTLS: m.StartTLS,
			Username: m.Username, Password: m.Password, Timeout: m.Timeout.Duration}
		if m.PasswordFile != "" {
			pw, err := readSecret(m.PasswordFile)
			if err != nil {
				return Config{}, fmt.Errorf("reading alerts.mail.password_file: %w", err)
			}
			mail.Password = pw
		}
		if m.CAFile != "" {
			t, err := tlsWithCAs(m.CAFile)
			if err != nil {
				return Config{}, fmt.Errorf("reading alerts.mail.ca_file: %w", err)
			}
			mail.TLS = t
		}
		out.Mail = mail
	}
	return out, nil
}

// readSecret reads a one-line secret file, without its line break.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s: want the secret alone on one line", path)
	}
	return s, nil
}

// tlsWithCAs returns a client TLS configuration trusting the PEM
// certificates in path.
func tlsWithCAs(path string) (*tls.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
