package iboot

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTCPReply(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Reply
		wantErr string
	}{
		{"ON", ReplyOn, ""},
		{"OFF\r\n", ReplyOff, ""},
		{" cycle ", ReplyCycle, ""},
		{"BUSY\x00", ReplyBusy, ""},
		{"", "", "without a reply"},
		{"ONX", "", "unexpected reply"},
		{"OK", "", "unexpected reply"},
	} {
		got, err := ParseTCPReply([]byte(tc.in))
		if got != tc.want || (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseTCPReply(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := ParseTCPReply(nil); !errors.Is(err, errNoReply) {
		t.Errorf("empty reply error = %v, want errNoReply", err)
	}
}

func TestParseHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Reply
		wantErr string
	}{
		{"<html><body><status>ON</status></body></html>", ReplyOn, ""},
		{"<STATUS> off </STATUS>", ReplyOff, ""},
		{"<status>ON</status><status>OFF</status>", ReplyOn, ""},
		{"<html>Login</html>", "", "no <status>"},
		{"<status>ON", "", "not closed"},
		{"<status>MAYBE</status>", "", "unexpected status"},
	} {
		got, err := ParseHTTPStatus([]byte(tc.in))
		if got != tc.want || (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseHTTPStatus(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func FuzzParseTCPReply(f *testing.F) {
	for _, s := range []string{"ON", "OFF", "CYCLE", "BUSY", "OFF\r\n", "", "\x1b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseTCPReply(b)
		if err == nil && r != ReplyOn && r != ReplyOff && r != ReplyCycle && r != ReplyBusy {
			t.Fatalf("ParseTCPReply(%q) = %q without error", b, r)
		}
	})
}

func FuzzParseHTTPStatus(f *testing.F) {
	f.Add([]byte("<html><head><title>iBoot</title></head><body><status>ON</status></body></html>\n"))
	f.Add([]byte("<status>OFF</status>"))
	f.Add([]byte("<status>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseHTTPStatus(b)
		if err == nil && r != ReplyOn && r != ReplyOff && r != ReplyCycle && r != ReplyBusy {
			t.Fatalf("ParseHTTPStatus(%q) = %q without error", b, r)
		}
	})
}
