package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/demo"
)

// tmuxSession drives the console in a real terminal emulator.
type tmuxSession struct {
	t      *testing.T
	server string
}

func startTmux(t *testing.T, width, height int, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("tmux not installed; skipping outside CI")
		}
		t.Fatal("tmux not installed: CI must apt-get install tmux")
	}
	s := &tmuxSession{t: t, server: fmt.Sprintf("hatui-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	s.run("new-session", "-d", "-s", "main", "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), command)
	t.Cleanup(func() { exec.Command("tmux", "-L", s.server, "kill-server").Run() })
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.server}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen() string {
	out, err := exec.Command("tmux", "-L", s.server, "capture-pane", "-p", "-t", "main").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(capture-pane: %v: %s)", err, out)
	}
	return string(out)
}

func (s *tmuxSession) keys(keys ...string) {
	s.run(append([]string{"send-keys", "-t", "main"}, keys...)...)
}

// waitScreen polls the screen until cond holds.
func (s *tmuxSession) waitScreen(what string, d time.Duration, cond func(string) bool) time.Duration {
	s.t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond(s.screen()) {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("screen never showed %s within %v; it shows:\n%s", what, d, s.screen())
	return 0
}

// nodeRow reports whether the screen shows node's row with the state word.
func nodeRow(screen, node, state string) bool {
	return regexp.MustCompile(`(^|[ >])` + regexp.QuoteMeta(node) + `\s+` + state + `\b`).MatchString(screen)
}

func TestDemoInTmux(t *testing.T) {
	exitFile := filepath.Join(t.TempDir(), "exit")
	s := startTmux(t, 120, 40, fmt.Sprintf("%s --demo; echo $? > %s; sleep 60", hatuiBin, exitFile))

	took := s.waitScreen("five nodes", 10*time.Second, func(sc string) bool {
		for _, l := range demo.Layout {
			if !nodeRow(sc, l.Node, "online") {
				return false
			}
		}
		return true
	})
	t.Logf("five nodes online on screen after %v", took)

	s.keys(":", "demo kill pbx-b2", "Enter")
	s.waitScreen("pbx-b2 OFFLINE", 15*time.Second, func(sc string) bool {
		return nodeRow(sc, "pbx-b2", "OFFLINE")
	})

	s.keys("?")
	s.waitScreen("help", 5*time.Second, func(sc string) bool { return strings.Contains(sc, "Help") && strings.Contains(sc, "esc") })
	s.keys("Escape")
	s.waitScreen("help closed", 5*time.Second, func(sc string) bool { return !strings.Contains(sc, "━━ Help") })

	s.keys("q")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(exitFile); err == nil && len(b) > 0 {
			if strings.TrimSpace(string(b)) != "0" {
				t.Fatalf("hatui exited with %s after q", b)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("hatui did not exit after q; screen:\n%s", s.screen())
}

// BenchmarkDemoFirstScreen measures `hatui --demo` from exec to a screen
// showing all five nodes online, in a 120×40 tmux terminal.
func BenchmarkDemoFirstScreen(b *testing.B) {
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		server := fmt.Sprintf("hatui-bench-%d-%d", os.Getpid(), i)
		start := time.Now()
		if out, err := exec.Command("tmux", "-L", server, "new-session", "-d", "-s", "main", "-x", "120", "-y", "40", hatuiBin+" --demo").CombinedOutput(); err != nil {
			b.Fatalf("tmux: %v %s", err, out)
		}
		for {
			out, _ := exec.Command("tmux", "-L", server, "capture-pane", "-p", "-t", "main").CombinedOutput()
			all := true
			for _, l := range demo.Layout {
				all = all && nodeRow(string(out), l.Node, "online")
			}
			if all {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("no full screen after 30s:\n%s", out)
			}
			time.Sleep(5 * time.Millisecond)
		}
		samples = append(samples, time.Since(start))
		exec.Command("tmux", "-L", server, "kill-server").Run()
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Milliseconds()), "median-ms/first-screen")
	b.ReportMetric(float64(samples[len(samples)-1].Milliseconds()), "worst-ms/first-screen")
}
