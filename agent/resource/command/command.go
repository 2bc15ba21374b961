// Package command runs the external programs behind resources and health
// checks (systemctl, sv, OCF agents, operators' scripts) under a deadline,
// and turns what they print into one line an operator can read.
//
// Every program runs in a process group of its own so that a timeout kills
// the whole tree: a start script that forks a helper and then hangs must not
// leave the helper behind holding a port or a lock. Output is kept in
// bounded tail buffers because the end of an agent's output is where it
// says what went wrong, and because a runaway script must not grow the
// agent's memory.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// MaxOutput is how many bytes of each of stdout and stderr are kept (the
// last ones).
const MaxOutput = 16 << 10

// waitDelay is how long Run waits for output pipes to close after the
// program exited. A start script that backgrounds a daemon without
// redirecting its output leaves our pipe open in the daemon; after this
// delay the pipe is closed and the script's own exit status is used.
const waitDelay = 500 * time.Millisecond

// Cmd is a program to run.
type Cmd struct {
	Path string
	Args []string
	// Env is added to the agent's own environment; later entries win.
	Env []string
	// Dir is the working directory; "" means "/" so that a script never
	// depends on where the agent was started.
	Dir string
	// MaxOutput bounds each of stdout and stderr kept; 0 means MaxOutput.
	MaxOutput int
}

// Result is what a program did.
type Result struct {
	// Code is the exit status, or -1 when the program was killed by a
	// signal.
	Code   int
	Stdout []byte
	Stderr []byte
}

// Summary is the one line that best says what the program reported.
func (r Result) Summary() string {
	if s := Summary(r.Stderr); s != "" {
		return s
	}
	return Summary(r.Stdout)
}

// ErrTimeout is wrapped by Run's error when the context's deadline passed
// before the program finished. The program's process group has been killed.
var ErrTimeout = errors.New("timed out")

// Run runs c and waits for it, killing its process group if ctx ends first.
// A non-zero exit status is not an error: it is reported in Result.Code,
// because for systemctl, sv and OCF agents the status is the answer. Run
// returns an error when the program could not be started, when ctx ended
// (wrapping ErrTimeout for a deadline, or ctx.Err() otherwise), or when it
// was killed by a signal.
func Run(ctx context.Context, c Cmd) (Result, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = c.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	limit := c.MaxOutput
	if limit <= 0 {
		limit = MaxOutput
	}
	stdout := &tail{max: limit}
	stderr := &tail{max: limit}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Negative pid: the whole process group the program leads.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay

	err := cmd.Run()
	res := Result{Code: -1, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if cmd.ProcessState != nil {
		res.Code = cmd.ProcessState.ExitCode()
	}
	if cerr := ctx.Err(); cerr != nil && (err != nil || res.Code != 0) {
		// The program was still running when the context ended; its exit
		// status is the kill, not an answer.
		if errors.Is(cerr, context.DeadlineExceeded) {
			return res, fmt.Errorf("%s %s: %w", c.Path, argString(c.Args), ErrTimeout)
		}
		return res, fmt.Errorf("%s %s: %w", c.Path, argString(c.Args), cerr)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		return res, nil
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return res, fmt.Errorf("%s %s: killed by signal %v", c.Path, argString(c.Args), ws.Signal())
		}
		return res, nil
	default:
		return res, fmt.Errorf("run %s: %w", c.Path, err)
	}
}

func argString(args []string) string {
	if len(args) == 0 {
		return ""
	}
	var b bytes.Buffer
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a)
	}
	return b.String()
}

// tail is an io.Writer keeping only the last max bytes written.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tail) Bytes() []byte { return t.buf }
