package rhino

import (
	"strings"
	"testing"
)

var simReplies = Replies{OK: "OK\r\n", Busy: "BUSY\r\n", Error: "ERR\r\n"}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		r    Replies
		want Outcome
	}{
		{"", simReplies, Incomplete},
		{"O", simReplies, Incomplete},
		{"OK\r", simReplies, Incomplete}, // could still become OK\r\n
		{"OK\r\n", simReplies, OK},
		{"noise OK\r\n", simReplies, OK},
		{"BUSY\r\n", simReplies, Busy},
		{"ERR\r\nOK\r\n", simReplies, Failed}, // earliest wins
		{"WHAT\r\n", simReplies, Unexpected},
		{"\x15#?\xfe%\r\n", simReplies, Unexpected},
		{strings.Repeat("x", 300), simReplies, Unexpected},
		{"anything\n", Replies{}, Unexpected},
		{"OK", Replies{OK: "OK"}, OK},
	} {
		got, err := ParseReply([]byte(tc.in), tc.r)
		if got != tc.want || (got == Unexpected) != (err != nil) {
			t.Errorf("ParseReply(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestUnescape(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{`RELAYON {relay}\r`, "RELAYON 3\r", ""},
		{"RELAYON 3\r", "RELAYON 3\r", ""},
		{`\x02ON\x03`, "\x02ON\x03", ""},
		{`a\\b\n\t`, "a\\b\n\t", ""},
		{`\x0`, "", "two hex digits"},
		{`\xZZ`, "", "two hex digits"},
		{`tail\`, "", "lone backslash"},
		{`\q`, "", "unknown escape"},
	} {
		got, err := Unescape(tc.in, 3)
		if got != tc.want || (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Unescape(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"OK\r\n", "BUSY\r\n", "ERR\r\n", "\x15#?\xfe%\r\n", "O", "OK\r"} {
		f.Add([]byte(s), "OK\r\n", "BUSY\r\n")
	}
	f.Fuzz(func(t *testing.T, b []byte, ok, busy string) {
		r := Replies{OK: ok, Busy: busy, Error: "ERR\r\n"}
		o, err := ParseReply(b, r)
		if (o == Unexpected) != (err != nil) {
			t.Fatalf("ParseReply(%q) = %v, %v", b, o, err)
		}
		if o == OK && !strings.Contains(string(b), ok) {
			t.Fatalf("OK without %q in %q", ok, b)
		}
		if o == Incomplete && len(b) > maxReply {
			t.Fatalf("%d bytes still incomplete", len(b))
		}
	})
}
