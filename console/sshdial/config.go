package sshdial

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxIncludeDepth bounds nested Include directives, as OpenSSH does, so a
// file that includes itself is an error rather than a hang.
const maxIncludeDepth = 16

// maxLineBytes bounds one ssh_config line.
const maxLineBytes = 64 << 10

// Config is a parsed set of ssh_config(5) files, read in order. Only the
// keywords the console needs are interpreted (see [HostConfig]); every
// other keyword is accepted and ignored, so a real ~/.ssh/config loads.
// A Config is immutable and safe for concurrent use.
type Config struct {
	files []*configFile
}

type configFile struct {
	name  string
	stmts []stmt
}

// stmt is one line of a config file. args is split only for keywords this
// package interprets; others keep their raw text (ProxyCommand and friends
// take the rest of the line verbatim and may hold unbalanced quotes).
type stmt struct {
	key      string // lower case
	args     []string
	raw      string
	file     string
	line     int
	includes []*configFile // for Include: the files it matched
	followed bool          // Include was resolved (LoadConfig)
	match    []matchCrit   // for Match
}

type matchCrit struct {
	name   string // lower case: all, host, originalhost, user, localuser, or unsupported ones
	negate bool
	arg    string
}

// ConfigError says which line of which file is wrong and why.
type ConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseConfig parses one ssh_config file from r; name is used in errors.
// Include directives are recorded but not followed (use [LoadConfig]).
func ParseConfig(r io.Reader, name string) (*Config, error) {
	l := &loader{}
	f, err := l.parse(r, name, 0)
	if err != nil {
		return nil, err
	}
	return &Config{files: []*configFile{f}}, nil
}

// LoadConfig reads the ssh_config files at paths in order (the user's
// ~/.ssh/config first, then /etc/ssh/ssh_config, as ssh does), following
// Include directives. Relative Include paths are taken from the directory
// of the top-level file that includes them (~/.ssh or /etc/ssh). Files that
// do not exist are skipped.
func LoadConfig(paths ...string) (*Config, error) {
	c := &Config{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading ssh config: %w", err)
		}
		l := &loader{follow: true, baseDir: filepath.Dir(p)}
		f, err := l.parse(strings.NewReader(string(b)), p, 0)
		if err != nil {
			return nil, err
		}
		c.files = append(c.files, f)
	}
	return c, nil
}

type loader struct {
	follow  bool   // follow Include
	baseDir string // for relative Include paths
	home    string // for ~ in Include; empty: os.UserHomeDir
}

func (l *loader) parse(r io.Reader, name string, depth int) (*configFile, error) {
	f := &configFile{name: name}
	br := bufio.NewReader(r)
	lineNo := 0
	for {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, &ConfigError{name, lineNo + 1, err.Error()}
		}
		if line == "" && err != nil {
			break
		}
		lineNo++
		st, perr := l.parseLine(line, name, lineNo, depth)
		if perr != nil {
			return nil, perr
		}
		if st != nil {
			f.stmts = append(f.stmts, *st)
		}
		if err != nil {
			break
		}
	}
	return f, nil
}

// readLine returns the next line without its newline; io.EOF comes with
// the last (possibly empty) piece.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		b.Write(chunk)
		if b.Len() > maxLineBytes {
			return "", fmt.Errorf("line longer than %d bytes: is this an ssh_config file?", maxLineBytes)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		s := strings.TrimSuffix(b.String(), "\n")
		return s, err
	}
}

func (l *loader) parseLine(line, file string, lineNo, depth int) (*stmt, error) {
	bad := func(format string, args ...any) error {
		return &ConfigError{file, lineNo, fmt.Sprintf(format, args...)}
	}
	line = strings.TrimRight(line, " \t\r\n")
	line = strings.TrimLeft(line, " \t")
	if line == "" || line[0] == '#' {
		return nil, nil
	}
	if !isText(line) {
		return nil, bad("line holds control characters or invalid UTF-8: is this an ssh_config file?")
	}
	// The keyword ends at whitespace or '='; one '=' may separate it from
	// its arguments ("Port=22", "Port = 22").
	i := strings.IndexAny(line, " \t=")
	kw, rest := line, ""
	if i >= 0 {
		kw, rest = line[:i], line[i:]
	}
	rest = strings.TrimLeft(rest, " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	st := &stmt{key: strings.ToLower(kw), raw: rest, file: file, line: lineNo}
	spec, known := keywords[st.key]
	if !known {
		return st, nil
	}
	args, err := splitArgs(rest)
	if err != nil {
		return nil, bad("%s: %v", kw, err)
	}
	st.args = args
	if len(args) < spec.min || spec.max >= 0 && len(args) > spec.max {
		switch {
		case spec.min == spec.max:
			return nil, bad("%s takes exactly %d argument(s), got %d", kw, spec.min, len(args))
		case spec.max < 0:
			return nil, bad("%s needs at least %d argument(s)", kw, spec.min)
		}
	}
	if spec.check != nil {
		if err := spec.check(args); err != nil {
			return nil, bad("%s %s: %v", kw, strings.Join(args, " "), err)
		}
	}
	switch st.key {
	case "match":
		m, err := parseMatch(args)
		if err != nil {
			return nil, bad("Match: %v", err)
		}
		st.match = m
	case "include":
		if !l.follow {
			return st, nil
		}
		st.followed = true
		if depth >= maxIncludeDepth {
			return nil, bad("Include nested deeper than %d files: does a file include itself?", maxIncludeDepth)
		}
		for _, pat := range args {
			p, err := expandTilde(pat, l.home)
			if err != nil {
				return nil, bad("Include %s: %v", pat, err)
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(l.baseDir, p)
			}
			matches, err := filepath.Glob(p)
			if err != nil {
				return nil, bad("Include %s: %v", pat, err)
			}
			slices.Sort(matches)
			for _, m := range matches {
				b, err := os.ReadFile(m)
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						continue
					}
					return nil, bad("Include %s: %v", m, err)
				}
				inc, err := l.parse(strings.NewReader(string(b)), m, depth+1)
				if err != nil {
					return nil, err
				}
				st.includes = append(st.includes, inc)
			}
		}
	}
	return st, nil
}

func isText(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' || r < 0x20 && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

type keywordSpec struct {
	min, max int // argument count; max -1 is unbounded
	check    func(args []string) error
}

// keywords are the ssh_config keywords this package interprets.
var keywords = map[string]keywordSpec{
	"host":                  {1, -1, nil},
	"match":                 {1, -1, nil},
	"include":               {1, -1, nil},
	"hostname":              {1, 1, nil},
	"user":                  {1, 1, nil},
	"port":                  {1, 1, func(a []string) error { _, err := parsePort(a[0]); return err }},
	"identityfile":          {1, 1, nil},
	"identityagent":         {1, 1, nil},
	"identitiesonly":        {1, 1, checkYesNo},
	"proxyjump":             {1, 1, func(a []string) error { _, err := parseJumps(a[0]); return err }},
	"serveraliveinterval":   {1, 1, func(a []string) error { _, err := parseSSHTime(a[0]); return err }},
	"serveralivecountmax":   {1, 1, func(a []string) error { _, err := parseCount(a[0]); return err }},
	"connecttimeout":        {1, 1, checkTimeout},
	"userknownhostsfile":    {1, -1, nil},
	"globalknownhostsfile":  {1, -1, nil},
	"stricthostkeychecking": {1, 1, func(a []string) error { _, err := parseStrict(a[0]); return err }},
	"hashknownhosts":        {1, 1, checkYesNo},
}

func checkYesNo(a []string) error { _, err := parseYesNo(a[0]); return err }

func checkTimeout(a []string) error {
	if strings.EqualFold(a[0], "none") {
		return nil
	}
	_, err := parseSSHTime(a[0])
	return err
}

func parseYesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	}
	return false, errors.New(`want "yes" or "no"`)
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return n, nil
}

func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("%q is not a count (a whole number, 0 or more)", s)
	}
	return n, nil
}

// Host key checking policies (StrictHostKeyChecking), normalised.
const (
	StrictYes       = "yes"        // unknown hosts are refused
	StrictAsk       = "ask"        // unknown hosts are asked about (the default)
	StrictAcceptNew = "accept-new" // unknown hosts are added; changed keys refused
	StrictNo        = "no"         // as accept-new: hatui never accepts a changed key
)

func parseStrict(s string) (string, error) {
	switch strings.ToLower(s) {
	case "yes", "true":
		return StrictYes, nil
	case "ask":
		return StrictAsk, nil
	case "accept-new":
		return StrictAcceptNew, nil
	case "no", "off", "false":
		return StrictNo, nil
	}
	return "", errors.New(`want yes, ask, accept-new, no or off`)
}

// parseSSHTime parses an ssh_config time: seconds, or numbers with units
// s, m, h, d, w, concatenated ("90", "1m30s", "2h").
func parseSSHTime(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty time")
	}
	bad := fmt.Errorf("%q is not a time (seconds, or like 30s, 5m, 1h30m)", s)
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return 0, bad
		}
		n, _ := strconv.Atoi(s[:i])
		unit := time.Second
		s = s[i:]
		if s != "" {
			switch s[0] {
			case 's', 'S':
				unit = time.Second
			case 'm', 'M':
				unit = time.Minute
			case 'h', 'H':
				unit = time.Hour
			case 'd', 'D':
				unit = 24 * time.Hour
			case 'w', 'W':
				unit = 7 * 24 * time.Hour
			default:
				return 0, bad
			}
			s = s[1:]
		}
		total += time.Duration(n) * unit
		if total > 365*24*time.Hour {
			return 0, fmt.Errorf("%v is longer than a year", total)
		}
	}
	return total, nil
}

// splitArgs splits arguments as OpenSSH's argv_split does: whitespace
// separates, single or double quotes group, a backslash escapes a quote,
// a backslash or (outside quotes) a space, and an unquoted '#' at the start
// of an argument ends the line.
func splitArgs(s string) ([]string, error) {
	var args []string
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) || s[i] == '#' {
			return args, nil
		}
		var b strings.Builder
		var quote byte
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"' || s[i+1] == '\\' || quote == 0 && s[i+1] == ' '):
				i++
				b.WriteByte(s[i])
			case quote == 0 && (c == ' ' || c == '\t'):
				goto done
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case quote != 0 && c == quote:
				quote = 0
			default:
				b.WriteByte(c)
			}
		}
	done:
		if quote != 0 {
			return nil, errors.New("unterminated quote")
		}
		args = append(args, b.String())
	}
}

var supportedMatch = map[string]bool{"all": true, "host": true, "originalhost": true, "user": true, "localuser": true}
var unsupportedMatch = map[string]bool{"canonical": true, "final": true, "exec": true, "localnetwork": true, "tagged": true, "address": true, "localaddress": true, "localport": true, "rdomain": true}

func parseMatch(args []string) ([]matchCrit, error) {
	var out []matchCrit
	for i := 0; i < len(args); i++ {
		c := matchCrit{name: strings.ToLower(args[i])}
		if strings.HasPrefix(c.name, "!") {
			c.negate, c.name = true, c.name[1:]
		}
		if !supportedMatch[c.name] && !unsupportedMatch[c.name] {
			return nil, fmt.Errorf("unknown criterion %q (want all, host, originalhost, user, localuser, exec, ...)", args[i])
		}
		switch c.name {
		case "all", "canonical", "final":
			// These take no argument.
		default:
			if i+1 >= len(args) {
				return nil, fmt.Errorf("%s needs an argument", c.name)
			}
			i++
			c.arg = args[i]
		}
		out = append(out, c)
	}
	return out, nil
}

// HostConfig is what ssh_config says about one host: for every keyword the
// first value obtained, as ssh_config(5) specifies; IdentityFile values
// accumulate. Values are as written: tokens (%h, ~) are expanded by
// [Resolve]. Zero values mean "not set"; use Has to tell a set zero apart.
type HostConfig struct {
	HostName              string
	User                  string
	Port                  int
	IdentityFiles         []string
	IdentityAgent         string
	IdentitiesOnly        bool
	ProxyJump             string // "none", or a comma-separated list of [user@]host[:port]
	ProxyCommand          string // not supported by hatui; kept to say so
	ServerAliveInterval   time.Duration
	ServerAliveCountMax   int
	ConnectTimeout        time.Duration
	UserKnownHostsFiles   []string
	GlobalKnownHostsFiles []string
	StrictHostKeyChecking string // one of the Strict* constants
	HashKnownHosts        bool

	// Warnings name the parts of the configuration that could not be
	// honoured (unsupported Match criteria, Include in ParseConfig).
	Warnings []string

	set map[string]bool
}

// Has reports whether keyword (case-insensitive) was set for this host.
func (h *HostConfig) Has(keyword string) bool { return h.set[strings.ToLower(keyword)] }

// Lookup returns the settings for host as ssh would use them when given
// host on its command line. The remote user, for Match user, is the User
// setting or the local user.
func (c *Config) Lookup(host string) *HostConfig {
	return c.lookup(host, "", currentUser())
}

// lookup evaluates the files for alias; cmdUser is the user given on the
// command line (it wins over User for Match user), localUser the user
// running the console.
func (c *Config) lookup(alias, cmdUser, localUser string) *HostConfig {
	h := &HostConfig{set: map[string]bool{}}
	w := walker{h: h, alias: alias, cmdUser: cmdUser, localUser: localUser}
	if c != nil {
		for _, f := range c.files {
			w.walk(f, true, false)
		}
	}
	return h
}

type walker struct {
	h                         *HostConfig
	alias, cmdUser, localUser string
}

func (w *walker) warn(st *stmt, format string, args ...any) {
	msg := fmt.Sprintf("%s:%d: ", st.file, st.line) + fmt.Sprintf(format, args...)
	if !slices.Contains(w.h.Warnings, msg) {
		w.h.Warnings = append(w.h.Warnings, msg)
	}
}

// walk applies f's statements. active is whether the enclosing block
// applies; never forces every Host and Match in f to not match, as
// OpenSSH does for a file included from a block that does not apply.
func (w *walker) walk(f *configFile, active, never bool) {
	for i := range f.stmts {
		st := &f.stmts[i]
		switch st.key {
		case "host":
			active = !never && matchList(st.args, strings.ToLower(w.alias), true)
		case "match":
			active = !never && w.match(st)
		case "include":
			if !st.followed && active && !never {
				w.warn(st, "Include %s is not followed here", strings.Join(st.args, " "))
			}
			for _, inc := range st.includes {
				w.walk(inc, active, never || !active)
			}
		default:
			if active {
				w.apply(st)
			}
		}
	}
}

func (w *walker) match(st *stmt) bool {
	for _, c := range st.match {
		var ok bool
		switch c.name {
		case "all":
			ok = true
		case "host":
			host := w.alias
			if w.h.HostName != "" {
				host = expandHostName(w.h.HostName, w.alias)
			}
			ok = matchList(strings.Split(c.arg, ","), strings.ToLower(host), true)
		case "originalhost":
			ok = matchList(strings.Split(c.arg, ","), strings.ToLower(w.alias), true)
		case "user":
			u := w.cmdUser
			if u == "" {
				u = w.h.User
			}
			if u == "" {
				u = w.localUser
			}
			ok = matchList(strings.Split(c.arg, ","), u, false)
		case "localuser":
			ok = matchList(strings.Split(c.arg, ","), w.localUser, false)
		default:
			w.warn(st, "Match %s is not supported by hatui; the block is skipped", c.name)
			return false
		}
		if ok == c.negate {
			return false
		}
	}
	return true
}

func (w *walker) apply(st *stmt) {
	h := w.h
	if _, ok := keywords[st.key]; !ok {
		if st.key == "proxycommand" && !h.set["proxycommand"] && !h.set["proxyjump"] {
			h.set["proxycommand"] = true
			h.ProxyCommand = st.raw
		}
		return
	}
	if st.key == "identityfile" {
		if !h.set["identityfile"] || len(h.IdentityFiles) < 100 {
			h.set["identityfile"] = true
			h.IdentityFiles = append(h.IdentityFiles, st.args[0])
		}
		return
	}
	// ProxyJump and ProxyCommand compete: whichever comes first wins.
	if h.set[st.key] || st.key == "proxyjump" && h.set["proxycommand"] {
		return
	}
	h.set[st.key] = true
	a := st.args
	switch st.key {
	case "hostname":
		h.HostName = a[0]
	case "user":
		h.User = a[0]
	case "port":
		h.Port, _ = parsePort(a[0])
	case "identityagent":
		h.IdentityAgent = a[0]
	case "identitiesonly":
		h.IdentitiesOnly, _ = parseYesNo(a[0])
	case "proxyjump":
		h.ProxyJump = a[0]
	case "serveraliveinterval":
		h.ServerAliveInterval, _ = parseSSHTime(a[0])
	case "serveralivecountmax":
		h.ServerAliveCountMax, _ = parseCount(a[0])
	case "connecttimeout":
		if strings.EqualFold(a[0], "none") {
			delete(h.set, st.key)
		} else {
			h.ConnectTimeout, _ = parseSSHTime(a[0])
		}
	case "userknownhostsfile":
		h.UserKnownHostsFiles = slices.Clone(a)
	case "globalknownhostsfile":
		h.GlobalKnownHostsFiles = slices.Clone(a)
	case "stricthostkeychecking":
		h.StrictHostKeyChecking, _ = parseStrict(a[0])
	case "hashknownhosts":
		h.HashKnownHosts, _ = parseYesNo(a[0])
	}
}

// matchList reports whether s matches the pattern list as OpenSSH's
// match_pattern_list does: some pattern matches and no negated ("!")
// pattern does. With fold, patterns are compared in lower case.
func matchList(patterns []string, s string, fold bool) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if fold {
			p = strings.ToLower(p)
		}
		if wildcard(p, s) {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// wildcard matches s against p, where '*' is any run of characters and
// '?' any one. It backtracks only to the last '*', so it is linear in
// practice and quadratic at worst (fuzzed inputs cannot blow it up).
func wildcard(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
