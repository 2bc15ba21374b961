package health

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// need skips the test when tool is missing, unless in CI, where a missing
// tool is a broken image and must fail.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed; skipping outside CI", tool)
		}
		t.Fatalf("%s not installed: CI must provide it", tool)
	}
	return p
}

// spec returns a valid spec of kind with params and short timings.
func spec(name, kind string, params map[string]string) Spec {
	s := DefaultSpec()
	s.Name, s.Kind, s.Params = name, kind, params
	s.Interval, s.Timeout = time.Second, 500*time.Millisecond
	return s
}

// mustCheck builds a check or fails the test.
func mustCheck(t *testing.T, s Spec) *Check {
	t.Helper()
	c, err := New(s)
	if err != nil {
		t.Fatalf("New(%s): %v", s.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// freeUDPPort returns a UDP port nobody listens on (for a moment).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
