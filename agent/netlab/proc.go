//go:build linux

package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a process started in a host with Host.Start, the leader of its
// own process group.
type Proc struct {
	host    *Host
	cmd     *exec.Cmd
	prog    string
	pid     int
	logPath string
	done    chan struct{}
	err     error // of cmd.Wait, set before done is closed
}

// Start starts cmd, made by h.Command, as the leader of a new process
// group. Its standard output and error, unless already set, go to a log
// file in the lab's Dir (Log reads it). The whole group is killed at the
// test's cleanup; the process also gets SIGKILL if the test binary dies.
// On a failed test the cleanup logs the last lines of every log.
func (h *Host) Start(cmd *exec.Cmd) *Proc {
	l := h.lab
	l.t.Helper()
	if len(cmd.Args) < 5 || cmd.Path != l.ipPath || cmd.Args[1] != "netns" || cmd.Args[2] != "exec" || cmd.Args[3] != h.ns {
		l.fatalf("Start on %s: the command %q was not made by %s.Command", h.name, cmd.Args, h.name)
	}
	if cmd.Process != nil {
		l.fatalf("Start on %s: %s already started", h.name, cmd.Args[4])
	}
	prog := filepath.Base(cmd.Args[4])
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.fatalf("Start on %s after the test's cleanup", h.name)
	}
	l.logSeq++
	logPath := filepath.Join(l.dir, fmt.Sprintf("%s.%s.%d.log", h.name, prog, l.logSeq))
	l.mu.Unlock()

	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		l.fatalf("Start on %s: log file: %v", h.name, err)
	}
	defer logf.Close() // the child has its own copy
	if cmd.Stdout == nil {
		cmd.Stdout = logf
	}
	if cmd.Stderr == nil {
		cmd.Stderr = logf
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	// If the test binary is killed (go test's timeout), its cleanup never
	// runs; the leader dies with it and New's stale sweep finds the rest.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		l.fatalf("starting %s on %s: %v", prog, h.name, err)
	}
	p := &Proc{host: h, cmd: cmd, prog: prog, pid: cmd.Process.Pid, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// Pid returns the process id, which is also its process group id.
func (p *Proc) Pid() int { return p.pid }

// LogPath returns the file that holds the process's output.
func (p *Proc) LogPath() string { return p.logPath }

// Log returns the process's output so far (standard output and error,
// interleaved as written).
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	return string(b)
}

// Exited reports whether the process (the group's leader) has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns what exec.Cmd.Wait
// returned. Any number of goroutines may wait.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Kill sends SIGKILL to the whole process group, as a crash of the host's
// software would, and returns once the leader has exited.
func (p *Proc) Kill() { p.kill(30 * time.Second) }

// Stop sends SIGTERM to the whole process group and waits for the leader
// to exit; after 10 s it kills the group. It returns Wait's error (a
// process ended by the signal gives "signal: terminated").
func (p *Proc) Stop() error {
	p.signal(unix.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.host.lab.t.Logf("netlab: %s on %s ignored SIGTERM for 10s; killing it", p.prog, p.host.name)
		p.kill(30 * time.Second)
	}
	return p.Wait()
}

// kill SIGKILLs the group (even when the leader is gone: its children may
// not be) and waits up to d for the leader.
func (p *Proc) kill(d time.Duration) {
	p.signal(unix.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(d):
		p.host.lab.t.Logf("netlab: %s on %s (pid %d) still not reaped %v after SIGKILL", p.prog, p.host.name, p.pid, d)
	}
}

// state says whether the process ran to the end or how it ended.
func (p *Proc) state() string {
	if !p.Exited() {
		return "running"
	}
	if p.err == nil {
		return "exited 0"
	}
	return p.err.Error()
}

// signal sends sig to the process group. Once the leader is reaped, its
// pid may in principle name another group by now, so then only the members
// still found in the host's namespace are signalled.
func (p *Proc) signal(sig unix.Signal) {
	if !p.Exited() {
		unix.Kill(-p.pid, sig)
		return
	}
	for _, pid := range p.host.groupMembers(p.pid) {
		unix.Kill(pid, sig)
	}
}

// groupMembers lists the processes of process group pgid that are in h's
// namespace.
func (h *Host) groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := unix.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil || st.Ino != h.nsIno {
			continue
		}
		out = append(out, pid)
	}
	return out
}
