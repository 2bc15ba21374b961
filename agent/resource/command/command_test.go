package command

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestRunExitCodesAndOutput(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		script  string
		code    int
		summary string
	}{
		{"echo hello", 0, "hello"},
		{"echo out; echo 'ERROR: bad config' >&2; exit 6", 6, "ERROR: bad config"},
		{"echo line1; echo line2; exit 3", 3, "line1 | line2"},
	} {
		res, err := Run(ctx, Cmd{Path: "/bin/sh", Args: []string{"-c", tc.script}})
		if err != nil {
			t.Fatalf("%q: %v", tc.script, err)
		}
		if res.Code != tc.code || res.Summary() != tc.summary {
			t.Errorf("%q: code %d summary %q, want %d %q", tc.script, res.Code, res.Summary(), tc.code, tc.summary)
		}
	}
}

func TestRunEnvAndDir(t *testing.T) {
	res, err := Run(context.Background(), Cmd{Path: "/bin/sh", Args: []string{"-c", `echo "$HATUI_X $(pwd)"`}, Env: []string{"HATUI_X=42"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(res.Stdout)); got != "42 /" {
		t.Fatalf("got %q, want env and / as working directory", got)
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// The shell's child holds stdout open; a kill of the shell alone
	// would leave Run waiting on the pipe.
	_, err := Run(ctx, Cmd{Path: "/bin/sh", Args: []string{"-c", "sleep 300; echo done"}})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestRunBackgroundDaemonDoesNotHang(t *testing.T) {
	// A start script that leaves a daemon holding its stdout succeeds
	// with the script's own status.
	res, err := Run(context.Background(), Cmd{Path: "/bin/sh", Args: []string{"-c", "sleep 2 & echo started; exit 0"}})
	if err != nil || res.Code != 0 || res.Summary() != "started" {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}

func TestRunMissingProgram(t *testing.T) {
	if _, err := Run(context.Background(), Cmd{Path: "/nonexistent/prog"}); err == nil {
		t.Fatal("no error for a missing program")
	}
}

func TestRunKeepsTail(t *testing.T) {
	res, err := Run(context.Background(), Cmd{Path: "/bin/sh", Args: []string{"-c", "yes x | head -c 100000; echo; echo; echo LAST"}, MaxOutput: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 1000 || !strings.HasSuffix(res.Summary(), "| LAST") {
		t.Fatalf("kept %d bytes, summary %q", len(res.Stdout), res.Summary())
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"\n\n  \n", ""},
		{"one\ntwo\n", "one | two"},
		{"1\n2\n3\n4\n", "2 | 3 | 4"},
		{"a\r\nb\r\n", "a | b"},
		{"Dummy(d)[9]: ERROR: broken\nINFO: cleanup done\n", "Dummy(d)[9]: ERROR: broken"},
		{"\x1b[1;31mred\x1b[0m text", "red text"},
		{"tab\there   and  spaces", "tab here and spaces"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{strings.Repeat("x", 300), strings.Repeat("x", MaxSummary-1) + "…"},
	} {
		if got := Summary([]byte(tc.in)); got != tc.want {
			t.Errorf("Summary(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSummary(f *testing.F) {
	for _, s := range []string{
		"", "ok\n", "Dummy(d)[9]: ERROR: broken\n", "\x1b[1;31mred\x1b[0m", "bad \xff\xfe",
		"System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n",
		strings.Repeat("é", 500),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := Summary(b)
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 %q", s)
		}
		if n := utf8.RuneCountInString(s); n > MaxSummary {
			t.Fatalf("%d runes, more than %d", n, MaxSummary)
		}
		for _, r := range s {
			if unicode.IsControl(r) {
				t.Fatalf("control character %U in %q", r, s)
			}
		}
		if s != strings.TrimSpace(s) {
			t.Fatalf("untrimmed %q", s)
		}
	})
}
