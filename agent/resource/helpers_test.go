package resource

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// need skips the test when tool is missing, unless running in CI, where
// a missing tool is a broken CI image and must fail.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (apt-get install the package providing it); skipping outside CI", tool)
		}
		t.Fatalf("%s not installed: CI must provide it", tool)
	}
	return p
}

// needRoot is need for privileges.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "" {
			t.Skip("needs root (network namespaces); skipping outside CI")
		}
		t.Fatal("needs root: CI runs as root")
	}
}

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// lsbScript writes an exec resource script that logs every call to log and
// keeps its state in dir. Creating dir/<name>.failstart makes start fail;
// dir/<name>.hang makes start hang.
func lsbScript(t *testing.T, dir, name, log string) string {
	t.Helper()
	st := filepath.Join(dir, name)
	return writeScript(t, dir, name+".sh", `
case "$1" in
start)
	echo "start $HATUI_RESOURCE" >>`+log+`
	if [ -e `+st+`.failstart ]; then
		echo "starting $HATUI_RESOURCE" 
		echo "ERROR: cannot bind port 5060: address in use" >&2
		exit 1
	fi
	touch `+st+`.state
	;;
stop)
	echo "stop $HATUI_RESOURCE" >>`+log+`
	rm -f `+st+`.state
	;;
status)
	[ -e `+st+`.state ] && { echo "running"; exit 0; }
	echo "not running"
	exit 3
	;;
esac
exit 0
`)
}

// readLines returns the lines of a log file ("" → none).
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// mustNew builds a resource or fails the test.
func mustNew(t *testing.T, spec Spec) Resource {
	t.Helper()
	r, err := New(spec)
	if err != nil {
		t.Fatalf("New(%s): %v", spec.Name, err)
	}
	return r
}

// waitFor polls cond until it holds or the deadline passes.
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

// ctx returns a context bounded well under the test binary's timeout.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
