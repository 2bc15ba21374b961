package enroll

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newServer is a store with one node's template, served on loopback.
func newServer(t *testing.T) (*Store, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), StoreFile)
	s, err := CreateStore(path, "127.0.0.1:0", Grant{Recipe: "test", Addrs: map[string]string{"n2": "127.0.0.2"}, Keys: "a2V5\n"},
		map[string]string{"n2": "node = \"{{.Node}}\"\n"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Serve(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return s, srv
}

func issue(t *testing.T, s *Store, srv *Server, ttl time.Duration) Token {
	t.Helper()
	tok, err := s.Issue("n2", ttl)
	if err != nil {
		t.Fatal(err)
	}
	tok.Addr = srv.Addr()
	// Round trip through the printed form, as an operator pastes it.
	back, err := ParseToken(tok.String())
	if err != nil || back != tok {
		t.Fatalf("token round trip: %v %+v", err, back)
	}
	return tok
}

func redeem(t *testing.T, tok Token) (Grant, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Redeem(ctx, tok)
}

func TestJoinTokenWorksOnce(t *testing.T) {
	s, srv := newServer(t)
	tok := issue(t, s, srv, time.Hour)
	g, err := redeem(t, tok)
	if err != nil {
		t.Fatalf("first use: %v", err)
	}
	if g.Node != "n2" || g.Keys != "a2V5\n" || g.Addrs["n2"] != "127.0.0.2" {
		t.Fatalf("grant %+v", g)
	}
	_, err = redeem(t, tok)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), ErrUsed.Error()) {
		t.Fatalf("second use: got %v, want a refusal saying it was used", err)
	}
	// The store keeps the secret's hash only, and the use survives a
	// restart of the first node's agent.
	b, _ := os.ReadFile(s.path)
	if strings.Contains(string(b), tok.Secret) {
		t.Fatal("the store holds the token's secret")
	}
	s2, err := OpenStore(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Redeem(tok.ID, tok.Secret, "test"); !errors.Is(err, ErrUsed) {
		t.Fatalf("after reopening: %v, want ErrUsed", err)
	}
	if s2.Pending() {
		t.Fatal("a used token is still pending")
	}
}

func TestJoinTokenExpires(t *testing.T) {
	s, srv := newServer(t)
	tok := issue(t, s, srv, time.Hour)
	s.mu.Lock()
	s.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	s.mu.Unlock()
	_, err := redeem(t, tok)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), ErrExpired.Error()) {
		t.Fatalf("got %v, want a refusal saying it expired", err)
	}
}

func TestJoinWrongTokenRefused(t *testing.T) {
	s, srv := newServer(t)
	tok := issue(t, s, srv, time.Hour)
	bad := tok
	bad.Secret = strings.Repeat("0", len(tok.Secret))
	if _, err := redeem(t, bad); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "wrong join token") {
		t.Fatalf("wrong secret: %v", err)
	}
	unknown := tok
	unknown.ID = "ffffffffffff"
	if _, err := redeem(t, unknown); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "wrong join token") {
		t.Fatalf("unknown id: %v", err)
	}
	// A listener that is not the pinned one gets nothing.
	pinned := tok
	pinned.Pin = strings.Repeat("a", 64)
	if _, err := redeem(t, pinned); err == nil || !strings.Contains(err.Error(), "pin mismatch") {
		t.Fatalf("wrong pin: %v", err)
	}
	// The wrong attempts used nothing up.
	if _, err := redeem(t, tok); err != nil {
		t.Fatalf("the right token after wrong ones: %v", err)
	}
}

func TestParseTokenRejectsDamage(t *testing.T) {
	for _, s := range []string{"", "hello", tokenPrefix + "!!", tokenPrefix + "e30"} {
		if _, err := ParseToken(s); err == nil {
			t.Errorf("ParseToken(%q) accepted", s)
		}
	}
}

// Every recipe under recipes/ loads, and every node's file renders into
// a valid configuration.
func TestRecipesRender(t *testing.T) {
	dirs, _ := filepath.Glob("../../recipes/*/recipe.toml")
	if len(dirs) == 0 {
		t.Fatal("no recipes found")
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			r, err := LoadRecipe(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
				t.Error("no README.md")
			}
			root := t.TempDir()
			_, err = Bootstrap(BootstrapOptions{Recipe: dir, Paths: Paths{
				Etc: filepath.Join(root, "etc"), State: filepath.Join(root, "state"), Run: filepath.Join(root, "run"),
			}})
			if err != nil {
				t.Fatalf("bootstrap of %s: %v", r.Name, err)
			}
		})
	}
}

// TestParseTokenErrors: each way a pasted token goes wrong says what to
// do, and the remedy names a command that exists.
func TestParseTokenErrors(t *testing.T) {
	whole := Token{Addr: "10.0.0.1:7945", ID: "abc", Secret: "s3cret", Pin: strings.Repeat("0", 64)}.String()
	incomplete := Token{Addr: "10.0.0.1:7945", ID: "abc", Pin: strings.Repeat("0", 64)}.String()
	for _, tc := range []struct{ name, in, want string }{
		{"not a token", "hello", "not a join token"},
		{"cut short", whole[:len(whole)-7], "damaged"},
		{"no secret", incomplete, "'ha-agent token NODE'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseToken(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseToken = %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if tok, err := ParseToken(" " + whole + "\n"); err != nil || tok.Secret != "s3cret" {
		t.Errorf("a whole token with spaces around: %+v, %v", tok, err)
	}
}
