package enroll

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// StoreFile is the store's name in the first node's state directory.
const StoreFile = "enroll.json"

// DefaultTTL is how long a token is valid (kubeadm's default).
const DefaultTTL = 24 * time.Hour

// Grant is what a node receives when its token is accepted.
type Grant struct {
	Recipe string `json:"recipe"`
	Node   string `json:"node"`
	// Template is the node's configuration template.
	Template string `json:"template"`
	// Addrs are every node's address.
	Addrs map[string]string `json:"addrs"`
	// Keys is the gossip key file's content.
	Keys string `json:"keys"`
	// Devices are the recipe's default device paths.
	Devices map[string]string `json:"devices,omitempty"`
	// Files are the recipe's further templates, by file name.
	Files map[string]File `json:"files,omitempty"`
}

// File is a further template of a recipe.
type File struct {
	Text string `json:"text"`
	Exec bool   `json:"exec,omitempty"`
}

// entry is one issued token.
type entry struct {
	ID      string    `json:"id"`
	Hash    string    `json:"hash"` // hex SHA-256 of the secret
	Node    string    `json:"node"`
	Expires time.Time `json:"expires"`
	Used    time.Time `json:"used,omitzero"`
	UsedBy  string    `json:"used_by,omitempty"`
}

// storeData is the file's content.
type storeData struct {
	// Listen is the join listener's address, host:port.
	Listen string `json:"listen"`
	// Cert and Key are the listener's self-signed certificate (PEM).
	Cert string `json:"cert"`
	Key  string `json:"key"`
	// Recipe, Templates, Addrs and Keys make every node's grant.
	Recipe    string            `json:"recipe"`
	Templates map[string]string `json:"templates"`
	Addrs     map[string]string `json:"addrs"`
	Keys      string            `json:"keys"`
	Devices   map[string]string `json:"devices,omitempty"`
	Files     map[string]File   `json:"files,omitempty"`
	Tokens    []entry           `json:"tokens"`
}

// Store is the first node's record of issued tokens, a JSON file of mode
// 0600 in its state directory.
type Store struct {
	path string
	mu   sync.Mutex
	d    storeData
	now  func() time.Time
}

// Errors a redemption may end with; the server sends their text.
var (
	ErrWrongToken = errors.New("wrong join token: no such token, or its secret does not match")
	ErrExpired    = errors.New("join token expired")
	ErrUsed       = errors.New("join token was used already")
)

// CreateStore writes a new store: a fresh certificate, the recipe's
// templates and addresses, and the key file content.
func CreateStore(path, listen string, g Grant, templates map[string]string) (*Store, error) {
	cert, key, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, now: time.Now, d: storeData{
		Listen: listen, Cert: cert, Key: key, Recipe: g.Recipe,
		Templates: templates, Addrs: g.Addrs, Keys: g.Keys, Devices: g.Devices, Files: g.Files,
	}}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	return s, s.save()
}

// OpenStore reads a store.
func OpenStore(path string) (*Store, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, now: time.Now}
	if err := json.Unmarshal(b, &s.d); err != nil {
		return nil, fmt.Errorf("reading %s: %w (remove it and bootstrap again, or issue tokens afresh)", path, err)
	}
	return s, nil
}

// Listen is the join listener's address.
func (s *Store) Listen() string { return s.d.Listen }

// TLS is the listener's certificate.
func (s *Store) TLS() (tls.Certificate, error) {
	return tls.X509KeyPair([]byte(s.d.Cert), []byte(s.d.Key))
}

// Pin is the hex SHA-256 of the listener's certificate.
func (s *Store) Pin() (string, error) {
	blk, _ := pem.Decode([]byte(s.d.Cert))
	if blk == nil {
		return "", fmt.Errorf("%s: the certificate is damaged", s.path)
	}
	sum := sha256.Sum256(blk.Bytes)
	return hex.EncodeToString(sum[:]), nil
}

// Issue makes a token for node, valid for ttl. The secret exists only in
// the returned token.
func (s *Store) Issue(node string, ttl time.Duration) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.d.Templates[node]; !ok {
		return Token{}, fmt.Errorf("recipe %s has no node %q", s.d.Recipe, node)
	}
	pin, err := s.Pin()
	if err != nil {
		return Token{}, err
	}
	t := Token{Addr: s.d.Listen, ID: randHex(6), Secret: randHex(24), Pin: pin}
	s.d.Tokens = append(s.d.Tokens, entry{ID: t.ID, Hash: hashSecret(t.Secret), Node: node, Expires: s.now().Add(ttl)})
	return t, s.save()
}

// Pending says whether some token is neither used nor expired.
func (s *Store) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, e := range s.d.Tokens {
		if e.Used.IsZero() && now.Before(e.Expires) {
			return true
		}
	}
	return false
}

// Redeem checks id and secret and, when the token is valid, marks it used
// on disk before it returns the node's grant. by names the caller (its
// address) in the store.
func (s *Store) Redeem(id, secret, by string) (Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// 'ha-agent token' may have added tokens since the agent started.
	if b, err := os.ReadFile(s.path); err == nil {
		var d storeData
		if json.Unmarshal(b, &d) == nil {
			s.d = d
		}
	}
	for i := range s.d.Tokens {
		e := &s.d.Tokens[i]
		if e.ID != id {
			continue
		}
		h := hashSecret(secret)
		if subtle.ConstantTimeCompare([]byte(h), []byte(e.Hash)) != 1 {
			return Grant{}, ErrWrongToken
		}
		if !e.Used.IsZero() {
			return Grant{}, fmt.Errorf("%w (by %s at %s): ask for a new one with 'ha-agent token %s' on the first node",
				ErrUsed, e.UsedBy, e.Used.UTC().Format(time.RFC3339), e.Node)
		}
		if !s.now().Before(e.Expires) {
			return Grant{}, fmt.Errorf("%w at %s: ask for a new one with 'ha-agent token %s' on the first node",
				ErrExpired, e.Expires.UTC().Format(time.RFC3339), e.Node)
		}
		e.Used, e.UsedBy = s.now(), by
		if err := s.save(); err != nil {
			e.Used, e.UsedBy = time.Time{}, ""
			return Grant{}, err
		}
		return Grant{Recipe: s.d.Recipe, Node: e.Node, Template: s.d.Templates[e.Node],
			Addrs: s.d.Addrs, Keys: s.d.Keys, Devices: s.d.Devices, Files: s.d.Files}, nil
	}
	return Grant{}, ErrWrongToken
}

func (s *Store) save() error {
	b, err := json.MarshalIndent(s.d, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing the token store: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("writing the token store: %w", err)
	}
	return nil
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

func selfSigned() (certPEM, keyPEM string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("making the join certificate: %w", err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hatui join"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return "", "", fmt.Errorf("making the join certificate: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", fmt.Errorf("making the join certificate: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), nil
}
