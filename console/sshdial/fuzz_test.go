package sshdial

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseConfig feeds arbitrary ssh_config text to the parser, then
// looks hosts up and resolves routes in it: nothing may panic or hang, and
// a config that parses must resolve or fail with a *Error.
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"config", "debian_ssh_config", "include/config", "include/extra", "include/conf.d/10-site-a.conf"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "pbx-a1")
	}
	f.Add([]byte("Host *\n  ProxyJump a,b,c\nHost a\n ProxyJump b\nHost b\n ProxyJump a\n"), "x")
	f.Add([]byte("Match host x,!y user \"a b\" localuser op\n  Port=1\n"), "x")
	f.Add([]byte("Host x\n IdentityFile %d/%h/%r/%%/~\n UserKnownHostsFile ~/kh %u\n"), "x")
	f.Add([]byte("HostName %h.%h.%%\nPort 65535\nServerAliveInterval 1w2d3h4m5s\n"), "[::1]")
	f.Fuzz(func(t *testing.T, data []byte, host string) {
		c, err := ParseConfig(bytes.NewReader(data), "fuzz")
		if err != nil {
			if _, ok := err.(*ConfigError); !ok {
				t.Fatalf("error %T %v is not a *ConfigError", err, err)
			}
			return
		}
		for _, h := range []string{host, "pbx-a1", "x", ""} {
			hc := c.lookup(h, "", "op")
			if hc.Port < 0 || hc.Port > 65535 {
				t.Fatalf("port %d", hc.Port)
			}
		}
		o := Options{Config: c, Home: "/home/op", LocalUser: "op", Getenv: func(string) string { return "" }}
		hops, err := Resolve(host, o)
		if err != nil {
			if KindOf(err) == 0 {
				t.Fatalf("Resolve error %v is not an *Error", err)
			}
			return
		}
		if len(hops) == 0 || len(hops) > maxHops {
			t.Fatalf("%d hops", len(hops))
		}
		for _, h := range hops {
			if h.Port < 1 || h.Port > 65535 || h.HostName == "" || h.User == "" {
				t.Fatalf("bad hop %+v", h)
			}
		}
	})
}

// FuzzParseTarget checks that any target either fails with the syntax in
// the message or round-trips through String.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"pbx-a1", "ops@pbx-a1:2222", "[fd00::1]:22", "fd00::1", "ssh://a@b:1/", "a@b@c", "@", "[", "x:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			if !strings.Contains(err.Error(), "[user@]host[:port]") {
				t.Fatalf("error %q does not show the syntax", err)
			}
			return
		}
		back, err := ParseTarget(tg.String())
		if err != nil || back != tg {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, tg, tg.String(), back, err)
		}
	})
}
