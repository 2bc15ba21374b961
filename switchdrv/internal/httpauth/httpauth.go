// Package httpauth implements the HTTP digest authentication (RFC 2617,
// MD5, qop=auth) that embedded devices such as the berofos offer besides
// basic authentication, for both the driver (client) and its simulator
// (server). The standard library has only basic authentication.
package httpauth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
)

// ParseParams parses the comma-separated key=value (or key="value")
// parameters of a Digest challenge or response, after the scheme word.
func ParseParams(s string) map[string]string {
	p := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		rest = strings.TrimSpace(rest)
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				v, rest = rest[1:], ""
			} else {
				v, rest = rest[1:end+1], rest[end+2:]
			}
		} else {
			v, rest, _ = strings.Cut(rest, ",")
			v = strings.TrimSpace(v)
			rest = "," + rest
		}
		p[k] = v
		_, rest, _ = strings.Cut(rest, ",")
		s = rest
	}
	return p
}

// Scheme splits an Authorization or WWW-Authenticate header into its
// scheme (lower case) and parameters.
func Scheme(h string) (scheme, params string) {
	scheme, params, _ = strings.Cut(strings.TrimSpace(h), " ")
	return strings.ToLower(scheme), params
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Response computes the digest response value.
func Response(user, password, method, uri string, p map[string]string, nc, cnonce string) string {
	ha1 := md5hex(user + ":" + p["realm"] + ":" + password)
	ha2 := md5hex(method + ":" + uri)
	if qopAuth(p["qop"]) {
		return md5hex(strings.Join([]string{ha1, p["nonce"], nc, cnonce, "auth", ha2}, ":"))
	}
	return md5hex(ha1 + ":" + p["nonce"] + ":" + ha2)
}

func qopAuth(qop string) bool {
	for _, q := range strings.Split(qop, ",") {
		if strings.TrimSpace(q) == "auth" {
			return true
		}
	}
	return false
}

// Authorization answers a Digest challenge (the WWW-Authenticate
// parameters) for one request.
func Authorization(user, password, method, uri string, challenge map[string]string) string {
	cn := make([]byte, 8)
	rand.Read(cn)
	cnonce := hex.EncodeToString(cn)
	const nc = "00000001"
	resp := Response(user, password, method, uri, challenge, nc, cnonce)
	h := fmt.Sprintf(`Digest username=%q, realm=%q, nonce=%q, uri=%q, response=%q, algorithm=MD5`,
		user, challenge["realm"], challenge["nonce"], uri, resp)
	if qopAuth(challenge["qop"]) {
		h += fmt.Sprintf(`, qop=auth, nc=%s, cnonce=%q`, nc, cnonce)
	}
	if o, ok := challenge["opaque"]; ok {
		h += fmt.Sprintf(`, opaque=%q`, o)
	}
	return h
}

// Check verifies a Digest Authorization header's parameters against the
// expected user and password, for the nonce the server issued.
func Check(user, password, method, nonce string, p map[string]string) bool {
	if p["username"] != user || p["nonce"] != nonce {
		return false
	}
	ch := map[string]string{"realm": p["realm"], "nonce": nonce, "qop": p["qop"]}
	want := Response(user, password, method, p["uri"], ch, p["nc"], p["cnonce"])
	return subtle.ConstantTimeCompare([]byte(want), []byte(p["response"])) == 1
}

// Challenge returns a WWW-Authenticate header value for a Digest challenge.
func Challenge(realm, nonce string) string {
	return fmt.Sprintf(`Digest realm=%q, nonce=%q, qop="auth", algorithm=MD5`, realm, nonce)
}
