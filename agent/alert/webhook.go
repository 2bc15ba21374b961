package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/hatui/hatui/agent/config"
)

// webhook POSTs alerts as JSON.
type webhook struct {
	cfg      Webhook
	name     string
	redacted string // the URL without credentials and query, for messages
	client   *http.Client
}

func newWebhook(w Webhook) (*webhook, error) {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http or https URL", config.RedactURL(w.URL))
	}
	if strings.ContainsAny(w.Token, "\r\n") {
		return nil, errors.New("the token contains a line break")
	}
	if w.Timeout == 0 {
		w.Timeout = DefaultWebhookTimeout
	}
	for k, v := range w.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") || strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("header %q is not a header name and a one-line value", k)
		}
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	}
	if w.TLS != nil {
		tr.TLSClientConfig = w.TLS.Clone()
	}
	h := &webhook{
		cfg:      w,
		name:     w.Name,
		redacted: config.RedactURL(w.URL),
		client: &http.Client{
			Transport: tr,
			Timeout:   w.Timeout,
			// A 301 or 302 would turn the POST into a GET, whose 200
			// would look like a delivery: redirects are errors.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if h.name == "" {
		h.name = h.redacted
	}
	return h, nil
}

func (h *webhook) deliver(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building request to %s: %w", h.redacted, err)
	}
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hatui-ha-agent")
	if h.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.cfg.Token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL, query (often a secret) included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("posting to %s: %w", h.redacted, err)
	}
	defer resp.Body.Close()
	// Some of the reply explains a refusal; the rest is drained (bounded)
	// so that the connection can be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	msg := fmt.Sprintf("%s answered HTTP %s", h.redacted, resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		msg += fmt.Sprintf(" to %s (redirects are not followed: set the url to the final address)", config.RedactURL(resp.Header.Get("Location")))
	}
	if s := printable(snippet); s != "" {
		msg += ": " + s
	}
	return errors.New(msg)
}

func (h *webhook) close() { h.client.CloseIdleConnections() }

// printable makes a reply fit on one log line.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, string(b))
	return strings.Join(strings.Fields(s), " ")
}
