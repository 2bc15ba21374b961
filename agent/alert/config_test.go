package alert

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/config"
)

const baseConfig = `node = "pbx-a1"
site = "a"
deployment = "acme"
state_dir = "/var/lib/ha-agent"
[gossip]
bind = "10.0.0.1:7946"
keys = ["f3r7m1w4qH0n8C5sXk2c6p9yZb1vA0eL3uT7oI4jQ5g="]
`

// TestAlertsConfig checks the [alerts] section's validation: each error
// names the file, the key and the expected form.
func TestAlertsConfig(t *testing.T) {
	const hook = "[[alerts.webhook]]\nurl = \"https://noc.example.net/hook\"\n"
	const mail = "[alerts.mail]\naddr = \"smtp.example.net:587\"\nfrom = \"ha@example.net\"\nto = [\"noc@example.net\"]\n"
	for _, tc := range []struct {
		name, section string
		key, expect   string // "" key: valid
	}{
		{"none", "", "", ""},
		{"webhook and mail", hook + "token = \"t\"\nheaders = { X-Team = \"voice\" }\n" + mail + "starttls = true\nusername = \"u\"\npassword_file = \"/etc/ha-agent/smtp.pw\"\n", "", ""},
		{"bad url", "[[alerts.webhook]]\nurl = \"noc.example.net/hook\"", "alerts.webhook[0].url", "http or https URL"},
		{"missing url", "[[alerts.webhook]]\nname = \"noc\"", "alerts.webhook[0].url", "missing"},
		{"ftp url", "[[alerts.webhook]]\nurl = \"ftp://noc.example.net/\"", "alerts.webhook[0].url", "http or https URL"},
		{"two unnamed same url", hook + hook, "alerts.webhook[1].name", "a name for each webhook"},
		{"two named same url", hook + "name = \"a\"\n" + hook + "name = \"b\"\n", "", ""},
		{"token and file", hook + "token = \"t\"\ntoken_file = \"/t\"", "alerts.webhook[0].token_file", "either token or token_file"},
		{"relative token file", hook + "token_file = \"t\"", "alerts.webhook[0].token_file", "absolute path"},
		{"bad header", hook + "headers = { \"X Team\" = \"v\" }", "alerts.webhook[0].headers", "header names"},
		{"authorization header", hook + "headers = { Authorization = \"Basic x\" }", "alerts.webhook[0].headers", "use token"},
		{"webhook timeout", hook + "timeout = \"1ms\"", "alerts.webhook[0].timeout", "100ms to 5m"},
		{"mail missing to", "[alerts.mail]\naddr = \"smtp.example.net:25\"\nfrom = \"ha@example.net\"", "alerts.mail.to", "list of e-mail addresses"},
		{"mail missing addr", "[alerts.mail]\nfrom = \"ha@example.net\"\nto = [\"noc@example.net\"]", "alerts.mail.addr", "host:port"},
		{"mail addr without port", "[alerts.mail]\naddr = \"smtp.example.net\"\nfrom = \"ha@example.net\"\nto = [\"noc@example.net\"]", "alerts.mail.addr", "host:port"},
		{"mail bad to", mail[:len(mail)-len("to = [\"noc@example.net\"]\n")] + "to = [\"noc@example.net\", \"NOC <noc@x.net>\"]", "alerts.mail.to[1]", "bare e-mail address"},
		{"mail bad from", "[alerts.mail]\naddr = \"smtp.example.net:25\"\nfrom = \"ha-agent\"\nto = [\"noc@example.net\"]", "alerts.mail.from", "e-mail address"},
		{"auth in clear", mail + "username = \"u\"\npassword = \"p\"", "alerts.mail.starttls", "starttls = true"},
		{"auth in clear to localhost", "[alerts.mail]\naddr = \"127.0.0.1:25\"\nfrom = \"ha@example.net\"\nto = [\"noc@example.net\"]\nusername = \"u\"\npassword = \"p\"", "", ""},
		{"password without user", mail + "starttls = true\npassword = \"p\"", "alerts.mail.username", "login name"},
		{"retry too short", "[alerts]\nretry = \"10ms\"", "alerts.retry", "1s to 1h"},
		{"max attempts", "[alerts]\nmax_attempts = -1", "alerts.max_attempts", "1 to 1000"},
		{"relative queue dir", "[alerts]\nqueue_dir = \"alerts\"", "alerts.queue_dir", "absolute"},
		{"flush timeout", "[alerts]\nflush_timeout = \"2m\"", "alerts.flush_timeout", "up to 1m"},
		{"unknown key", hook + "tokn = \"t\"", "alerts.webhook.tokn", "keys documented"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := baseConfig + tc.section
			c, err := config.Parse("/etc/ha-agent/node.toml", []byte(data))
			if tc.key == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (config %+v), want a *config.Error", err, c)
			}
			if ce.Key != tc.key || ce.File != "/etc/ha-agent/node.toml" || !strings.Contains(err.Error(), tc.expect) {
				t.Errorf("error %q (key %q), want key %q and a message saying %q", err, ce.Key, tc.key, tc.expect)
			}
		})
	}
}

// TestFromConfig: defaults fill the unset keys, and the secret and CA
// files are read into the sender's configuration.
func TestFromConfig(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	pwFile := filepath.Join(dir, "pw")
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(tokenFile, []byte("tok-123\n"), 0o600)
	os.WriteFile(pwFile, []byte("pa55\n"), 0o600)
	os.WriteFile(caFile, []byte(testCAPEM(t)), 0o600)
	data := baseConfig + `[[alerts.webhook]]
url = "https://user:pw@noc.example.net/hook?key=k"
token_file = "` + tokenFile + `"
ca_file = "` + caFile + `"
[alerts.mail]
addr = "smtp.example.net:587"
from = "ha@example.net"
to = ["noc@example.net"]
starttls = true
username = "alerts"
password_file = "` + pwFile + `"
`
	c, err := config.Parse("node.toml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if c.Alerts.QueueDir != "/var/lib/ha-agent/alerts" || c.Alerts.Retry.Duration != 15*time.Second ||
		c.Alerts.MaxAttempts != 30 || c.Alerts.FlushTimeout.Duration != 5*time.Second {
		t.Errorf("defaults not applied: %+v", c.Alerts)
	}
	ac, err := FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	w := ac.Webhooks[0]
	if w.Name != "https://noc.example.net/hook" || w.Token != "tok-123" || w.TLS == nil || w.TLS.RootCAs == nil || w.Timeout != 10*time.Second {
		t.Errorf("webhook = %+v: want the redacted URL as name, the token from its file, the CA pool, 10s", w)
	}
	if m := ac.Mail; m == nil || m.Password != "pa55" || m.TLS != nil || m.Timeout != 30*time.Second || !m.StartTLS {
		t.Errorf("mail = %+v: want the password from its file, STARTTLS with the system's CAs, 30s", ac.Mail)
	}
	if ac.Deployment != "acme" || ac.Node != "pbx-a1" || ac.QueueDir != "/var/lib/ha-agent/alerts" {
		t.Errorf("config = %+v", ac)
	}

	os.WriteFile(tokenFile, nil, 0o600)
	if _, err := FromConfig(c); err == nil || !strings.Contains(err.Error(), "alerts.webhook[0].token_file") {
		t.Errorf("empty token file: err = %v, want it to name alerts.webhook[0].token_file", err)
	}
}

// testCAPEM returns a PEM certificate.
func testCAPEM(t *testing.T) string {
	t.Helper()
	_, _, p := selfSigned(t)
	return p
}
