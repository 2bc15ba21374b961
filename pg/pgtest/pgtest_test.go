package pgtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const childEnv = "HATUI_PGTEST_CHILD"

// TestChild is run by TestCleanup in a child process: it starts a master,
// prints its data directory, then fails or waits to be killed.
func TestChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("only run as the child of TestCleanup")
	}
	m := NewMaster(t, "child")
	fmt.Printf("DATADIR %s\n", m.DataDir)
	if mode == "fail" {
		t.Fatal("failing on purpose")
	}
	time.Sleep(time.Minute) // killed by the parent long before
}

// postmasters lists live processes serving dir.
func postmasters(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		b, err := os.ReadFile(p + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) == "postgres" && strings.Contains(string(b), dir) {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}

// TestCleanup checks that a server is stopped when its test fails, and
// when the test process is killed outright (the watchdog's job).
func TestCleanup(t *testing.T) {
	Require(t)
	for _, mode := range []string{"fail", "kill"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestChild$")
			cmd.Env = append(os.Environ(), childEnv+"="+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			sc := bufio.NewScanner(out)
			dir := ""
			for sc.Scan() {
				if d, ok := strings.CutPrefix(sc.Text(), "DATADIR "); ok {
					dir = d
					break
				}
			}
			if dir == "" {
				t.Fatal("the child never started its server")
			}
			if len(postmasters(dir)) == 0 {
				t.Fatal("no postmaster found for the child's server")
			}
			if mode == "kill" {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			go func() { _, _ = bufio.NewReader(out).WriteTo(devNull{}) }()
			_ = cmd.Wait()
			Eventually(t, 30*time.Second, func() (bool, string) {
				p := postmasters(dir)
				return len(p) == 0, fmt.Sprintf("postmaster of %s still running: %v", dir, p)
			})
			if mode == "kill" {
				os.RemoveAll(filepath.Dir(dir)) // the killed child could not
			}
		})
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }
