package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// processProbe looks for a live process in /proc, by name or through a
// pid file. A zombie does not count: it has exited and only waits for its
// parent, which is exactly the hang this check exists to see.
//
// Parameters (at least one):
//
//	name     the process name as the kernel records it (/proc/PID/comm,
//	         such as "asterisk"); for names longer than 15 characters the
//	         first argument's base name is compared too
//	pidfile  a pid file, such as /run/asterisk/asterisk.pid; with name
//	         set too, the pid's process must also have that name (a stale
//	         pid file pointing at a reused pid is a failure)
type processProbe struct {
	name    string
	pidfile string
	proc    string
}

func newProcess(check string, p map[string]string) (prober, error) {
	pp := &processProbe{name: p["name"], pidfile: p["pidfile"], proc: "/proc"}
	if pp.name == "" && pp.pidfile == "" {
		return nil, paramError(check, "name", "missing: a process check needs name or pidfile",
			"the process name, such as \"asterisk\", or pidfile = \"/run/asterisk/asterisk.pid\"")
	}
	if strings.ContainsAny(pp.name, "/\x00\n") {
		return nil, paramError(check, "name", fmt.Sprintf("%q is not a process name", pp.name),
			"the name in /proc/PID/comm, without a directory, such as \"asterisk\"")
	}
	if pp.pidfile != "" && !filepath.IsAbs(pp.pidfile) {
		return nil, paramError(check, "pidfile", fmt.Sprintf("%q is not an absolute path", pp.pidfile),
			"an absolute path such as /run/asterisk/asterisk.pid")
	}
	return pp, nil
}

func (p *processProbe) probe(ctx context.Context) (string, error) {
	if p.pidfile != "" {
		return p.probePidfile()
	}
	entries, err := os.ReadDir(p.proc)
	if err != nil {
		return "", fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ok, _ := p.matches(pid); ok {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return "", fmt.Errorf("no live process named %s", p.name)
	}
	return describePids(p.name, pids), nil
}

func (p *processProbe) probePidfile() (string, error) {
	b, err := os.ReadFile(p.pidfile)
	if err != nil {
		return "", fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "", fmt.Errorf("pid file %s holds %q, not a pid", p.pidfile, strings.TrimSpace(string(b)))
	}
	ok, why := p.matches(pid)
	if !ok {
		return "", fmt.Errorf("pid %d from %s: %s", pid, p.pidfile, why)
	}
	return fmt.Sprintf("pid %d", pid), nil
}

// matches reports whether pid is a live process with the probe's name (any
// name when none is set), and if not, why.
func (p *processProbe) matches(pid int) (bool, string) {
	dir := filepath.Join(p.proc, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if errors.Is(err, os.ErrNotExist) {
		return false, "not running"
	}
	if err != nil {
		return false, err.Error()
	}
	comm, state, ok := ParseStat(b)
	if !ok {
		return false, "unreadable /proc stat"
	}
	if state == 'Z' || state == 'X' {
		return false, "exited (zombie, not yet reaped by its parent)"
	}
	if p.name == "" || comm == p.name {
		return true, ""
	}
	// comm holds 15 bytes at most; compare a long name with argv[0].
	if len(p.name) > 15 && strings.HasPrefix(p.name, comm) {
		if cl, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
			argv0, _, _ := bytes.Cut(cl, []byte{0})
			if filepath.Base(string(argv0)) == p.name {
				return true, ""
			}
		}
	}
	return false, fmt.Sprintf("is %q, not %q (stale pid file?)", comm, p.name)
}

// ParseStat reads the command name and state from the contents of
// /proc/PID/stat: "PID (COMM) S ...". COMM may itself contain spaces and
// parentheses (a process chooses it), so it runs to the last ')'.
func ParseStat(b []byte) (comm string, state byte, ok bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) || b[end+1] != ' ' {
		return "", 0, false
	}
	return string(b[open+1 : end]), b[end+2], true
}

func describePids(name string, pids []int) string {
	const show = 5
	var s []string
	for i, pid := range pids {
		if i == show {
			s = append(s, "…")
			break
		}
		s = append(s, strconv.Itoa(pid))
	}
	noun := "process"
	if len(pids) > 1 {
		noun = "processes"
	}
	return fmt.Sprintf("%d %s %s (pid %s)", len(pids), name, noun, strings.Join(s, ", "))
}
