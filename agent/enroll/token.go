// Package enroll creates a deployment from a recipe on its first node and
// lets every other node join it with a one-time token.
//
// The model is kubeadm's bootstrap token with its CA pin: `ha-agent
// bootstrap` renders the first node's configuration from a recipe, makes the
// deployment's gossip key, and creates one join token per other node of the
// recipe. A token names the first node's join address, a token id, a secret
// and the SHA-256 pin of the join listener's self-signed certificate; it
// does not carry the gossip key. `ha-agent join TOKEN` dials the join
// listener over TLS, refuses any certificate but the pinned one, and presents
// id and secret. The first node's agent checks them (constant time), refuses
// a token that expired or was used already, marks it used on disk before it
// answers, and sends the node its recipe template, the addresses and the
// gossip key. The joining node renders its configuration with its own paths.
//
// A token is shown once (bootstrap prints it) and never logged: the agent
// logs token ids only. The store on the first node keeps a hash of each
// secret, never the secret.
package enroll

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// tokenPrefix starts every join token, so a pasted token is recognised and
// a future format can be told apart.
const tokenPrefix = "hatui-join-1."

// Token is a decoded join token.
type Token struct {
	// Addr is the join listener, host:port.
	Addr string `json:"a"`
	// ID names the token in the store and in logs.
	ID string `json:"i"`
	// Secret proves the holder was given the token.
	Secret string `json:"s"`
	// Pin is the hex SHA-256 of the join listener's certificate (DER).
	Pin string `json:"p"`
}

// String encodes the token for the command line.
func (t Token) String() string {
	b, _ := json.Marshal(t)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken decodes a token printed by bootstrap.
func ParseToken(s string) (Token, error) {
	var t Token
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return t, fmt.Errorf("not a join token: it must start with %q (copy the whole token bootstrap printed)", tokenPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return t, fmt.Errorf("join token is damaged (%w): copy it again, whole", err)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("join token is damaged (%w): copy it again, whole", err)
	}
	if _, _, err := net.SplitHostPort(t.Addr); err != nil || t.ID == "" || t.Secret == "" || len(t.Pin) != 64 {
		return t, fmt.Errorf("join token is incomplete: copy it again, whole, or make a new one on the first node with 'ha-agent token NODE'")
	}
	return t, nil
}
