package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpProbe GETs a URL and checks the status (and optionally the body).
// Redirects are not followed: the status the server gives is the answer.
// Every probe opens a new connection, so a server that stopped accepting
// is seen even when an old keep-alive connection still works.
//
// Parameters:
//
//	url              http:// or https:// URL (required)
//	expect           status codes counted healthy (default "200"),
//	                 such as "200-299" or "200,401"
//	contains         text the first 64 KiB of the body must contain
//	tls_skip_verify  "true" to accept any certificate (self-signed web UIs)
type httpProbe struct {
	url      string
	expect   codeSet
	contains string
	client   *http.Client
}

// maxHTTPBody is how much of a body the contains check reads.
const maxHTTPBody = 64 << 10

func newHTTP(check string, p map[string]string) (prober, error) {
	raw := p["url"]
	const want = "a URL such as http://127.0.0.1:8088/httpstatus"
	if raw == "" {
		return nil, paramError(check, "url", "missing", want)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, paramError(check, "url", fmt.Sprintf("%q is not an http or https URL", raw), want)
	}
	exp := p["expect"]
	if exp == "" {
		exp = "200"
	}
	codes, err := parseCodes(exp, 100, 599)
	if err != nil {
		return nil, paramError(check, "expect", err.Error(), "\"any\", or status codes and ranges such as \"200-299\"")
	}
	skip := false
	switch strings.ToLower(p["tls_skip_verify"]) {
	case "", "false", "no":
	case "true", "yes":
		skip = true
	default:
		return nil, paramError(check, "tls_skip_verify", fmt.Sprintf("%q is not true or false", p["tls_skip_verify"]), "true or false")
	}
	tr := &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil, // a health check goes straight to the service
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: skip},
	}
	return &httpProbe{
		url:      raw,
		expect:   codes,
		contains: p["contains"],
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func (h *httpProbe) probe(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", "hatui-agent")
	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out := fmt.Sprintf("%s in %s", resp.Status, time.Since(start).Round(time.Microsecond))
	if !h.expect.has(resp.StatusCode) {
		return out, fmt.Errorf("%s answered %s; expected %s", h.url, resp.Status, h.expect)
	}
	if h.contains != "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
		if err != nil {
			return out, fmt.Errorf("read body: %w", err)
		}
		if !strings.Contains(string(body), h.contains) {
			return out, fmt.Errorf("%s answered %s but the body lacks %q", h.url, resp.Status, h.contains)
		}
	}
	return out, nil
}

// Close drops idle connections (there are none: keep-alives are off).
func (h *httpProbe) Close() error {
	h.client.CloseIdleConnections()
	return nil
}
