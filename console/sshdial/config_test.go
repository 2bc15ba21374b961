package sshdial

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func loadTestConfig(t *testing.T, name string) *Config {
	t.Helper()
	c, err := LoadConfig(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("loading testdata/%s: %v", name, err)
	}
	if len(c.files) == 0 {
		t.Fatalf("testdata/%s: not found", name)
	}
	return c
}

func TestLookup(t *testing.T) {
	c := loadTestConfig(t, "config")
	tests := []struct {
		host string
		want HostConfig
	}{
		{"pbx-a1", HostConfig{HostName: "10.1.1.11", User: "ops", Port: 2222,
			IdentityFiles:       []string{"~/.ssh/noc_ed25519"},
			ServerAliveInterval: 5 * time.Second, ServerAliveCountMax: 2, ConnectTimeout: 90 * time.Second}},
		// Host names match case-insensitively.
		{"PBX-A1", HostConfig{HostName: "10.1.1.11", User: "ops", Port: 2222,
			IdentityFiles:       []string{"~/.ssh/noc_ed25519"},
			ServerAliveInterval: 5 * time.Second, ServerAliveCountMax: 2, ConnectTimeout: 90 * time.Second}},
		// The second pattern of a Host line; '=' separators.
		{"pbx-a2.example.net", HostConfig{HostName: "10.1.1.12", User: "ops", Port: 22,
			ServerAliveInterval: 30 * time.Second, ConnectTimeout: 90 * time.Second}},
		// '?' matches one character; quotes keep a space in a path.
		{"pbx-b7", HostConfig{HostName: "%h.site-b.example.net", User: "default-user", Port: 22,
			ProxyJump: "jump-b", IdentityFiles: []string{"~/.ssh/site b key"},
			ServerAliveInterval: 30 * time.Second, ConnectTimeout: 90 * time.Second}},
		{"pbx-b10", HostConfig{User: "default-user", Port: 22,
			ServerAliveInterval: 30 * time.Second, ConnectTimeout: 90 * time.Second}},
		{"pbx-c1.site-c", HostConfig{User: "default-user", Port: 22,
			ProxyJump:           "ops@bastion-c:2022,relay-c",
			UserKnownHostsFiles: []string{"~/.ssh/known_hosts.site-c", "/etc/noc/known_hosts"}, HashKnownHosts: true,
			ServerAliveInterval: 30 * time.Second, ConnectTimeout: 90 * time.Second}},
		// A negated pattern that matches cancels the whole Host line.
		{"pbx-c9.site-c", HostConfig{User: "default-user", Port: 22,
			ServerAliveInterval: 30 * time.Second, ConnectTimeout: 90 * time.Second}},
		// ProxyCommand came first, so the later ProxyJump is ignored.
		{"legacy", HostConfig{User: "default-user", Port: 22, ProxyCommand: "ssh -W %h:%p old-bastion",
			ServerAliveInterval: 30 * time.Second, ConnectTimeout: 90 * time.Second}},
		// IdentityFile accumulates; the first value of others wins.
		{"tokens", HostConfig{HostName: "tokens.example.net", User: "remote", Port: 22,
			IdentityFiles: []string{"%d/.ssh/%r@%h:%p", "~/.ssh/%u_key"}, IdentityAgent: "~/.ssh/agent.sock",
			ServerAliveInterval: 30 * time.Second, ConnectTimeout: 90 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got := c.lookup(tt.host, "", "op")
			got.set, got.Warnings = nil, nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Lookup(%q)\n got %+v\nwant %+v", tt.host, *got, tt.want)
			}
		})
	}
}

func TestLookupHas(t *testing.T) {
	c := loadTestConfig(t, "config")
	h := c.lookup("pbx-a1", "", "op")
	for _, kw := range []string{"HostName", "user", "PORT", "ServerAliveCountMax", "IdentitiesOnly"} {
		if !h.Has(kw) {
			t.Errorf("Has(%q) = false, want true", kw)
		}
	}
	for _, kw := range []string{"ProxyJump", "StrictHostKeyChecking", "Bogus"} {
		if h.Has(kw) {
			t.Errorf("Has(%q) = true, want false", kw)
		}
	}
}

func TestLookupMatch(t *testing.T) {
	c := loadTestConfig(t, "config")
	// Match originalhost match-* user ops: the user given on the command
	// line counts.
	if got := c.lookup("match-1", "ops", "op").HostName; got != "matched.example.net" {
		t.Errorf("Match with user ops: HostName %q, want matched.example.net", got)
	}
	if got := c.lookup("match-1", "", "op").HostName; got != "" {
		t.Errorf("Match without user ops: HostName %q, want unset", got)
	}
	// Match exec cannot be evaluated: skipped, with a warning naming it.
	h := c.lookup("anything", "", "op")
	if h.User != "default-user" {
		t.Errorf("User %q: the Match exec block must be skipped", h.User)
	}
	if len(h.Warnings) != 1 || !strings.Contains(h.Warnings[0], "Match exec is not supported") || !strings.Contains(h.Warnings[0], "config:46") {
		t.Errorf("warnings %q, want one naming Match exec at config:46", h.Warnings)
	}
}

func TestMatchCriteria(t *testing.T) {
	const cfg = `
Match host real.example.net
    User by-hostname
Match !localuser op
    Port 1111
Match localuser op,admin
    Port 2222
Host alias
    HostName real.example.net
Match host real.example.net
    IdentityFile second-pass-key
Match all
    ServerAliveCountMax 9
`
	c, err := ParseConfig(strings.NewReader(cfg), "test")
	if err != nil {
		t.Fatal(err)
	}
	h := c.lookup("alias", "", "op")
	// Match host sees HostName only once it is set.
	if h.User != "" || !reflect.DeepEqual(h.IdentityFiles, []string{"second-pass-key"}) {
		t.Errorf("Match host: User %q IdentityFiles %q; want unset and [second-pass-key]", h.User, h.IdentityFiles)
	}
	if h.Port != 2222 || h.ServerAliveCountMax != 9 {
		t.Errorf("Port %d CountMax %d, want 2222 and 9", h.Port, h.ServerAliveCountMax)
	}
	if got := c.lookup("real.example.net", "", "someone").Port; got != 1111 {
		t.Errorf("negated localuser: Port %d, want 1111", got)
	}
	if got := c.lookup("real.example.net", "", "someone").User; got != "by-hostname" {
		t.Errorf("Match host on the name given: User %q, want by-hostname", got)
	}
}

func TestLoadConfigInclude(t *testing.T) {
	c := loadTestConfig(t, "include/config")
	tests := []struct {
		host, user, hostname string
		port                 int
	}{
		{"site-a-1", "site-a-user", "", 2201},
		{"site-b-1", "site-b-user", "", 2999},
		{"top", "top-user", "", 2999},
		// Included from the active "Host gated" block: applies fully.
		{"gated", "extra-user", "from-extra.example.net", 2999},
		// Included from an inactive block: even its Host * does not match.
		{"other", "", "", 2999},
	}
	for _, tt := range tests {
		h := c.Lookup(tt.host)
		if h.User != tt.user || h.HostName != tt.hostname || h.Port != tt.port {
			t.Errorf("%s: User %q HostName %q Port %d; want %q %q %d", tt.host, h.User, h.HostName, h.Port, tt.user, tt.hostname, tt.port)
		}
	}
}

func TestLoadConfigOrder(t *testing.T) {
	dir := t.TempDir()
	user := filepath.Join(dir, "config")
	system := filepath.Join(dir, "ssh_config")
	os.WriteFile(user, []byte("Host n\n  User from-user-file\n"), 0o600)
	os.WriteFile(system, []byte("Host *\n  User from-system\n  Port 2022\n"), 0o600)
	c, err := LoadConfig(user, filepath.Join(dir, "missing"), system)
	if err != nil {
		t.Fatal(err)
	}
	h := c.Lookup("n")
	if h.User != "from-user-file" || h.Port != 2022 {
		t.Errorf("User %q Port %d; want the user file's User and the system file's Port", h.User, h.Port)
	}
}

func TestIncludeLoop(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config")
	os.WriteFile(p, []byte("Include config\n"), 0o600)
	_, err := LoadConfig(p)
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "deeper than") {
		t.Fatalf("self-including config: err %v, want a ConfigError about nesting", err)
	}
}

func TestParseConfigIncludeNotFollowed(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("Include other\nHost x\n  User u\n"), "cfg")
	if err != nil {
		t.Fatal(err)
	}
	h := c.Lookup("x")
	if h.User != "u" || len(h.Warnings) != 1 || !strings.Contains(h.Warnings[0], "Include other is not followed") {
		t.Errorf("User %q warnings %q", h.User, h.Warnings)
	}
}

func TestDebianSystemConfig(t *testing.T) {
	b, err := os.ReadFile("testdata/debian_ssh_config")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(strings.NewReader(string(b)), "ssh_config")
	if err != nil {
		t.Fatalf("Debian's /etc/ssh/ssh_config must parse: %v", err)
	}
	if h := c.Lookup("pbx-a1"); !h.HashKnownHosts || !h.Has("HashKnownHosts") {
		t.Error("Debian's HashKnownHosts yes not picked up")
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		want     string
	}{
		{"port not a number", "Host a\n  Port ssh\n", 2, `port "ssh" is not a number`},
		{"port zero", "Port 0\n", 1, "from 1 to 65535"},
		{"port too big", "Port=70000\n", 1, "from 1 to 65535"},
		{"two hostnames", "HostName a b\n", 1, "exactly 1 argument"},
		{"host without pattern", "Host\n", 1, "at least 1"},
		{"bad interval", "ServerAliveInterval 5x\n", 1, "not a time"},
		{"negative count", "ServerAliveCountMax -1\n", 1, "not a count"},
		{"bad strict", "StrictHostKeyChecking maybe\n", 1, "want yes, ask"},
		{"bad yes/no", "HashKnownHosts sometimes\n", 1, `want "yes" or "no"`},
		{"bad jump", "ProxyJump ops@:22\n", 1, "no host"},
		{"bad jump port", "ProxyJump a,b:x\n", 1, "jump host \"b:x\""},
		{"unterminated quote", "\n\nIdentityFile \"~/.ssh/key\n", 3, "unterminated quote"},
		{"match unknown", "Match colour blue\n", 1, "unknown criterion"},
		{"match missing arg", "Match host\n", 1, "host needs an argument"},
		{"binary", "Host a\x00b\n", 1, "control characters"},
		{"long line", "Host " + strings.Repeat("a", maxLineBytes) + "\n", 1, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tt.in), "cfg")
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *ConfigError", err)
			}
			if ce.Line != tt.line || ce.File != "cfg" || !strings.Contains(ce.Msg, tt.want) {
				t.Errorf("got %v (line %d), want line %d containing %q", ce, ce.Line, tt.line, tt.want)
			}
		})
	}
}

func TestParseConfigAccepts(t *testing.T) {
	// Keywords hatui does not interpret, with whatever quoting, must load.
	in := "SendEnv LANG LC_*\nLocalCommand echo \"unbalanced\nRemoteCommand it's fine\n" +
		"  # indented comment\n\n\tHost\ta\t# trailing comment\nport 22 # comment after value\n" +
		"ConnectTimeout none\nUser \"quoted user\"\r\n"
	c, err := ParseConfig(strings.NewReader(in), "cfg")
	if err != nil {
		t.Fatal(err)
	}
	h := c.Lookup("a")
	if h.Port != 22 || h.User != "quoted user" || h.Has("ConnectTimeout") {
		t.Errorf("got Port %d User %q ConnectTimeout set %v", h.Port, h.User, h.Has("ConnectTimeout"))
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a b\tc", []string{"a", "b", "c"}},
		{`"a b" c`, []string{"a b", "c"}},
		{`'a b'c`, []string{"a bc"}},
		{`a\ b`, []string{"a b"}},
		{`"a\"b"`, []string{`a"b`}},
		{`a\\b`, []string{`a\b`}},
		{`a\nb`, []string{`a\nb`}},
		{`a #comment`, []string{"a"}},
		{`a#notcomment`, []string{"a#notcomment"}},
		{`"#quoted"`, []string{"#quoted"}},
		{``, nil},
		{`""`, []string{""}},
	}
	for _, tt := range tests {
		got, err := splitArgs(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSSHTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"15", 15 * time.Second, true},
		{"0", 0, true},
		{"30s", 30 * time.Second, true},
		{"5M", 5 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"1w", 7 * 24 * time.Hour, true},
		{"2d", 48 * time.Hour, true},
		{"", 0, false},
		{"s", 0, false},
		{"-5", 0, false},
		{"5x", 0, false},
		{"1.5", 0, false},
		{"9999999999", 0, false},
		{"100w", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSSHTime(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSSHTime(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"pbx-*", "pbx-a1", true},
		{"pbx-*", "pbx", false},
		{"pbx-??", "pbx-a1", true},
		{"pbx-??", "pbx-a10", false},
		{"*.example.net", "a.example.net", true},
		{"*.example.net", "example.net", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"10.1.*.1?", "10.1.2.11", true},
		{"", "", true},
		{"", "a", false},
		{strings.Repeat("*a", 50), strings.Repeat("a", 49) + "b", false},
	}
	for _, tt := range tests {
		if got := wildcard(tt.pat, tt.s); got != tt.want {
			t.Errorf("wildcard(%q, %q) = %v, want %v", tt.pat, tt.s, got, tt.want)
		}
	}
}

func TestMatchList(t *testing.T) {
	tests := []struct {
		pats []string
		s    string
		want bool
	}{
		{[]string{"a", "b"}, "b", true},
		{[]string{"*", "!b"}, "b", false},
		{[]string{"!b", "*"}, "b", false},
		{[]string{"!b"}, "a", false}, // only negations never match
		{[]string{"PBX-*"}, "pbx-1", true},
	}
	for _, tt := range tests {
		if got := matchList(tt.pats, tt.s, true); got != tt.want {
			t.Errorf("matchList(%q, %q) = %v, want %v", tt.pats, tt.s, got, tt.want)
		}
	}
}
