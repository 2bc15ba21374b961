package sshdial

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hatui/hatui/console/sshdial/sshtest"
	"golang.org/x/crypto/ssh"
)

// A node has several host keys (Debian makes RSA, ECDSA and ED25519) and
// known_hosts holds only the ED25519 one, as OpenSSH's client records.
// x/crypto alone would prefer ECDSA and see a "changed" key; asking for the
// known key types first makes it work, as it does for ssh.
func TestHostKeyAlgorithmPreference(t *testing.T) {
	dir := t.TempDir()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(ecKey, "ecdsa host key")
	if err != nil {
		t.Fatal(err)
	}
	ecPath := filepath.Join(dir, "ssh_host_ecdsa_key")
	os.WriteFile(ecPath, pem.EncodeToMemory(block), 0o600)
	ecPub, _ := ssh.NewPublicKey(&ecKey.PublicKey)

	r := newRig(t, sshtest.Config{Settings: []string{"HostKey " + ecPath}})
	d := newDialer(t, r.target(), r.opts()) // known_hosts: the ED25519 key only
	nc, err := d.Dial(testCtx(t))
	if err != nil {
		t.Fatalf("server with ECDSA and ED25519 keys, ED25519 known: %v", err)
	}
	exchange(t, nc, "preferred key type")

	// And the other way round: only the ECDSA key is known.
	o := r.opts()
	o.KnownHostsFiles = []string{filepath.Join(dir, "kh_ecdsa")}
	appendKnownHost(o.KnownHostsFiles[0], false, r.srv.KnownHostsAddress(), ecPub)
	d2 := newDialer(t, r.target(), o)
	if _, err := d2.Dial(testCtx(t)); err != nil {
		t.Fatalf("ECDSA known: %v", err)
	}
}

func TestRevokedHostKey(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := "@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(r.srv.HostKey))) + "\n" + r.srv.KnownHostsLine(false) + "\n"
	os.WriteFile(kh, []byte(line), 0o600)
	o := r.opts()
	o.KnownHostsFiles = []string{kh}
	d := newDialer(t, r.target(), o)
	_, err := d.Dial(testCtx(t))
	wantKind(t, err, KindHostKeyChanged, ErrHostKeyChanged, "@revoked", kh+":1")
}

func TestBadKnownHostsFile(t *testing.T) {
	r := newRig(t, sshtest.Config{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte("# fine\nhost ssh-ed25519 not-base64!!\n"), 0o600)
	o := r.opts()
	o.KnownHostsFiles = []string{kh}
	d := newDialer(t, r.target(), o)
	_, err := d.Dial(testCtx(t))
	wantKind(t, err, KindConfig, ErrConfig, kh+":2", "fix or delete the line")
}

func TestAppendKnownHost(t *testing.T) {
	signer := sshtest.NewKey(t, filepath.Join(t.TempDir(), "k"), "")
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	if err := appendKnownHost(kh, false, "a", signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	// A file whose last line lacks its newline must not be glued to.
	f, _ := os.OpenFile(kh, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("# no newline")
	f.Close()
	if err := appendKnownHost(kh, false, "[b]:2222", signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(kh)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "a ssh-ed25519 ") || lines[1] != "# no newline" || !strings.HasPrefix(lines[2], "[b]:2222 ssh-ed25519 ") {
		t.Errorf("known_hosts:\n%s", b)
	}
	if st, _ := os.Stat(kh); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(kh)); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
}

func TestTerminalAsk(t *testing.T) {
	key := sshtest.NewKey(t, filepath.Join(t.TempDir(), "k"), "").PublicKey()
	fp := ssh.FingerprintSHA256(key)
	tests := []struct {
		input string
		want  bool
		asks  int // prompts after the first
	}{
		{"yes\n", true, 0},
		{"y\n", true, 0},
		{"No\n", false, 0},
		{"maybe\n\nyes\n", true, 2},
		{fp + "\n", true, 0},
		{"", false, 0},
		{"yes", true, 0}, // no newline before EOF
	}
	for _, tt := range tests {
		var out strings.Builder
		got, err := TerminalAsk(strings.NewReader(tt.input), &out)("pbx-a1 ([10.1.1.1]:2222)", key)
		if err != nil || got != tt.want {
			t.Errorf("input %q: %v, %v; want %v", tt.input, got, err, tt.want)
		}
		s := out.String()
		if !strings.Contains(s, "'pbx-a1 ([10.1.1.1]:2222)'") || !strings.Contains(s, "ED25519 key fingerprint is "+fp) {
			t.Errorf("prompt %q lacks host or fingerprint", s)
		}
		if n := strings.Count(s, "Please type"); n != tt.asks {
			t.Errorf("input %q: asked again %d times, want %d", tt.input, n, tt.asks)
		}
	}
}

func TestIdentitiesOnly(t *testing.T) {
	dir := t.TempDir()
	listed, listedRaw := sshtest.NewKeyPair(t, filepath.Join(dir, "listed"), "secret")
	_, otherRaw := sshtest.NewKeyPair(t, filepath.Join(dir, "other"), "")
	sock := serveKeyring(t, listedRaw, otherRaw)
	for _, only := range []bool{false, true} {
		t.Run(fmt.Sprint("IdentitiesOnly=", only), func(t *testing.T) {
			// One agent holding both keys; only "listed" is named.
			ag := dialAgent(testCtx(t), sock)
			defer ag.Close()
			ka := &keyAuth{hop: Hop{IdentityFiles: []string{filepath.Join(dir, "listed")}, IdentitiesOnly: only}, agent: ag, logf: t.Logf}
			ka.load()
			want := 2
			if only {
				want = 1
			}
			if len(ka.signers) != want {
				t.Fatalf("%d signers (%q), want %d", len(ka.signers), ka.offered, want)
			}
			// The encrypted file is not offered again: the agent has it.
			for _, s := range ka.signers {
				if _, lazy := s.(*lazySigner); lazy {
					t.Error("encrypted key file offered although the agent holds it")
				}
			}
			if string(ka.signers[0].PublicKey().Marshal()) != string(listed.PublicKey().Marshal()) {
				t.Error("first signer is not the listed key")
			}
		})
	}
}
