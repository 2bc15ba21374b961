package sshdial

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// Target is a host as the operator names it: [user@]host[:port], where
// host may be an ssh_config alias and an IPv6 address is written in
// brackets ("[fd00::1]:2222"). ssh://[user@]host[:port] is accepted too.
type Target struct {
	User string // empty: from ssh_config, else the local user
	Host string // an alias, a name or an address, without brackets
	Port int    // 0: from ssh_config, else 22
}

// ParseTarget parses [user@]host[:port].
func ParseTarget(s string) (Target, error) {
	t, err := parseTarget(s)
	if err != nil {
		return Target{}, fmt.Errorf("reading host %q: %w; write it as [user@]host[:port]", s, err)
	}
	return t, nil
}

func parseTarget(s string) (Target, error) {
	var t Target
	if s == "" {
		return t, errors.New("empty")
	}
	if !isText(s) || strings.ContainsAny(s, " \t,") {
		return t, errors.New("it holds spaces, commas or control characters")
	}
	s = strings.TrimPrefix(s, "ssh://")
	s = strings.TrimSuffix(s, "/") // ssh://host/ is a valid URI
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		t.User, s = s[:i], s[i+1:]
		if t.User == "" {
			return t, errors.New("the user before '@' is empty")
		}
	}
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return t, errors.New("'[' without ']'")
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return t, fmt.Errorf("unexpected %q after ']'", rest)
			}
			port = rest[1:]
			if port == "" {
				return t, errors.New("empty port after ':'")
			}
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
		if port == "" {
			return t, errors.New("empty port after ':'")
		}
	default:
		// No colon, or a bare IPv6 address whose colons are not a port.
	}
	if host == "" {
		return t, errors.New("no host")
	}
	if strings.HasPrefix(host, "-") {
		return t, errors.New("a host cannot start with '-'")
	}
	if strings.ContainsAny(host, "/[]@") {
		return t, errors.New("the host holds '/', '[', ']' or '@'")
	}
	t.Host = host
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return t, err
		}
		t.Port = p
	}
	return t, nil
}

// String formats t back to [user@]host[:port].
func (t Target) String() string {
	var b strings.Builder
	if t.User != "" {
		b.WriteString(t.User + "@")
	}
	host := t.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	b.WriteString(host)
	if t.Port != 0 {
		b.WriteString(":" + strconv.Itoa(t.Port))
	}
	return b.String()
}

// parseJumps parses a ProxyJump value: "none" or "" (nil, no jumps) or a comma
// list of [user@]host[:port].
func parseJumps(s string) ([]Target, error) {
	if s == "" || strings.EqualFold(s, "none") {
		return nil, nil
	}
	var out []Target
	for _, part := range strings.Split(s, ",") {
		t, err := parseTarget(part)
		if err != nil {
			return nil, fmt.Errorf("jump host %q: %v", part, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// expandHostName expands the tokens HostName allows: %h (the name given)
// and %%.
func expandHostName(hostname, alias string) string {
	if !strings.Contains(hostname, "%") {
		return hostname
	}
	var b strings.Builder
	for i := 0; i < len(hostname); i++ {
		if hostname[i] == '%' && i+1 < len(hostname) {
			switch hostname[i+1] {
			case 'h':
				b.WriteString(alias)
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(hostname[i])
	}
	return b.String()
}

// expandTokens expands ssh_config % tokens in a file name setting
// (IdentityFile, UserKnownHostsFile, IdentityAgent) and then a leading ~.
func expandTokens(keyword, s string, tokens map[byte]string, home string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("%s %q ends in a lone %%", keyword, s)
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, ok := tokens[s[i]]
		if !ok {
			return "", fmt.Errorf("%s %q: token %%%c is not supported here (use %%d %%h %%i %%L %%l %%n %%p %%r %%u or %%%%)", keyword, s, s[i])
		}
		b.WriteString(v)
	}
	return expandTilde(b.String(), home)
}

// expandTilde expands a leading ~ or ~user.
func expandTilde(p, home string) (string, error) {
	if !strings.HasPrefix(p, "~") {
		return p, nil
	}
	name, rest, _ := strings.Cut(p[1:], "/")
	dir := home
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			return "", fmt.Errorf("expanding %q: no user %q", p, name)
		}
		dir = u.HomeDir
	} else if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expanding %q: %w", p, err)
		}
		dir = h
	}
	if rest == "" {
		return dir, nil
	}
	return dir + "/" + rest, nil
}

// currentUser is the login name of the user running the console.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// hostPort joins a host and port the way known_hosts and net.Dial want.
func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
