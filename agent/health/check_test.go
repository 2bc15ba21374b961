package health

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestNewRejectsBadSpecs checks that every start-up error names the
// check and the key and says what would be right.
func TestNewRejectsBadSpecs(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o644)
	mod := func(f func(*Spec)) Spec {
		s := spec("sip-pbx", "tcp", map[string]string{"address": "127.0.0.1:5060"})
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		spec Spec
		key  string
		say  string
	}{
		{"timeout equals interval", mod(func(s *Spec) { s.Timeout, s.Interval = 5*time.Second, 5*time.Second }), "timeout", "timeout 5s is not shorter than interval 5s"},
		{"timeout above interval", mod(func(s *Spec) { s.Timeout, s.Interval = 10*time.Second, 5*time.Second }), "timeout", "raise interval or lower timeout"},
		{"zero rise", mod(func(s *Spec) { s.Rise = 0 }), "rise", "at least one success"},
		{"zero fall", mod(func(s *Spec) { s.Fall = 0 }), "fall", "at least one failure"},
		{"zero interval", mod(func(s *Spec) { s.Interval = 0 }), "interval", "not a positive duration"},
		{"zero timeout", mod(func(s *Spec) { s.Timeout = 0 }), "timeout", "not a positive duration"},
		{"unknown kind", mod(func(s *Spec) { s.Kind = "icmp" }), "kind", `unknown kind "icmp"`},
		{"bad name", mod(func(s *Spec) { s.Name = "a b" }), "name", "not a valid check name"},
		{"bad class", mod(func(s *Spec) { s.Class = "critical" }), "class", `unknown class "critical"`},
		{"major without resource", mod(func(s *Spec) { s.Class = Major }), "resource", "restarts its resource"},
		{"bad on_fatal", mod(func(s *Spec) { s.OnFatal = "restart" }), "on_fatal", "failover, fence or reboot"},
		{"unknown param", mod(func(s *Spec) { s.Params["adress"] = "x" }), "adress", "one of address"},
		{"tcp missing address", mod(func(s *Spec) { delete(s.Params, "address") }), "address", "missing"},
		{"tcp no port", mod(func(s *Spec) { s.Params["address"] = "127.0.0.1" }), "address", "not host:port"},
		{"tcp bad port", mod(func(s *Spec) { s.Params["address"] = "127.0.0.1:99999" }), "address", "from 1 to 65535"},
		{"sip bad accept", mod(func(s *Spec) { s.Kind = "sip"; s.Params["accept"] = "2xx" }), "accept", "not a status code"},
		{"sip accept out of range", mod(func(s *Spec) { s.Kind = "sip"; s.Params["accept"] = "700" }), "accept", "outside 100-699"},
		{"sip bad uri", mod(func(s *Spec) { s.Kind = "sip"; s.Params["uri"] = "http://x" }), "uri", "not a SIP URI"},
		{"http bad url", mod(func(s *Spec) { s.Kind = "http"; s.Params = map[string]string{"url": "ftp://x/"} }), "url", "not an http or https URL"},
		{"http bad expect", mod(func(s *Spec) { s.Kind = "http"; s.Params = map[string]string{"url": "http://x/", "expect": "299-200"} }), "expect", "reversed"},
		{"sql missing dsn", mod(func(s *Spec) { s.Kind = "sql"; s.Params = nil }), "dsn", "missing"},
		{"sql bad dsn", mod(func(s *Spec) { s.Kind = "sql"; s.Params = map[string]string{"dsn": "host='unterminated"} }), "dsn", "not a valid connection string"},
		{"exec missing binary", mod(func(s *Spec) { s.Kind = "exec"; s.Params = map[string]string{"path": "/nonexistent/check_sip"} }), "path", "is not installed"},
		{"exec not executable", mod(func(s *Spec) { s.Kind = "exec"; s.Params = map[string]string{"path": plain} }), "path", "not an executable file"},
		{"process nothing", mod(func(s *Spec) { s.Kind = "process"; s.Params = nil }), "name", "needs name or pidfile"},
		{"process relative pidfile", mod(func(s *Spec) { s.Kind = "process"; s.Params = map[string]string{"pidfile": "run/x.pid"} }), "pidfile", "not an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.spec)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded, want an error")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *ConfigError", err, err)
			}
			msg := err.Error()
			if ce.Check != tc.spec.Name || !strings.HasPrefix(msg, `check "`+tc.spec.Name+`"`) {
				t.Errorf("error %q does not name the check", msg)
			}
			if ce.Key != tc.key {
				t.Errorf("error %q: key %q, want %q", msg, ce.Key, tc.key)
			}
			if !strings.Contains(msg, tc.say) {
				t.Errorf("error %q does not say %q", msg, tc.say)
			}
		})
	}
}

func TestDefaultSpecIsValid(t *testing.T) {
	s := DefaultSpec()
	s.Name, s.Kind, s.Params = "ami", "tcp", map[string]string{"address": "127.0.0.1:5038"}
	c, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Spec()
	if got.Interval != DefaultInterval || got.Timeout != DefaultTimeout || got.Rise != DefaultRise || got.Fall != DefaultFall ||
		got.Class != Minor || got.OnFatal != ActionFailover {
		t.Fatalf("defaults = %+v", got)
	}
}

func TestNewMonitorRejectsDuplicates(t *testing.T) {
	a := mustCheck(t, spec("same", "tcp", map[string]string{"address": "127.0.0.1:1"}))
	b := mustCheck(t, spec("same", "tcp", map[string]string{"address": "127.0.0.1:2"}))
	if _, err := NewMonitor([]*Check{a, b}, nil); err == nil || !strings.Contains(err.Error(), `check "same" is configured twice`) {
		t.Fatalf("NewMonitor = %v", err)
	}
}

// sippResponse is a real answer of sipp's UAS to the check's OPTIONS.
const sippResponse = "SIP/2.0 200 OK\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:15097;branch=z9hG4bKabc;rport\r\n" +
	"From: <sip:hatui@127.0.0.1>;tag=123\r\n" +
	"To: <sip:127.0.0.1:15098>;tag=3394SIPpTag011\r\n" +
	"Call-ID: abc@127.0.0.1\r\n" +
	"CSeq: 1 OPTIONS\r\n" +
	"Contact: <sip:127.0.0.1:15098;transport=UDP>\r\n" +
	"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n" +
	"Accept: application/sdp\r\n" +
	"Content-Length: 0\r\n\r\n"

func TestParseSIPResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want SIPResponse
		err  string
	}{
		{"sipp", sippResponse, SIPResponse{Code: 200, Reason: "OK", CallID: "abc@127.0.0.1", CSeq: 1, CSeqMethod: "OPTIONS", Branch: "z9hG4bKabc"}, ""},
		{"leading CRLF keep-alive, LF only, compact, odd spacing",
			"\r\n\r\nsip/2.0   404   Not  Found\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\ni :  xyz@host \nCSEQ:   7   OPTIONS\n\nbody: ignored\n",
			SIPResponse{Code: 404, Reason: "Not  Found", CallID: "xyz@host", CSeq: 7, CSeqMethod: "OPTIONS", Branch: "z9hG4bK1"}, ""},
		{"folded header", "SIP/2.0 503 Service Unavailable\r\nCall-ID:\r\n  folded@host\r\n\r\n",
			SIPResponse{Code: 503, Reason: "Service Unavailable", CallID: "folded@host"}, ""},
		{"no reason phrase", "SIP/2.0 200\r\nCall-ID: a\r\n\r\n", SIPResponse{Code: 200, CallID: "a"}, ""},
		{"truncated datagram", "SIP/2.0 200 OK\r\nCall-ID: a", SIPResponse{Code: 200, Reason: "OK", CallID: "a"}, ""},
		{"request", "OPTIONS sip:x SIP/2.0\r\n\r\n", SIPResponse{}, "a SIP request"},
		{"http", "HTTP/1.1 200 OK\r\n\r\n", SIPResponse{}, "not a SIP/2.0 response"},
		{"code too big", "SIP/2.0 700 Nope\r\n\r\n", SIPResponse{}, "not from 100 to 699"},
		{"code letters", "SIP/2.0 2OO OK\r\n\r\n", SIPResponse{}, "not from 100 to 699"},
		{"code short", "SIP/2.0 20 OK\r\n\r\n", SIPResponse{}, "not three digits"},
		{"empty", "\r\n\r\n", SIPResponse{}, "empty"},
		{"bad cseq", "SIP/2.0 200 OK\r\nCSeq: one OPTIONS\r\n\r\n", SIPResponse{}, "bad CSeq"},
	} {
		got, err := ParseSIPResponse([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v\nwant %+v", tc.name, got, err, tc.want)
		}
	}
}

func FuzzParseSIPResponse(f *testing.F) {
	for _, s := range []string{
		sippResponse,
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-524287-1---abc;rport=5060\r\nFrom: <sip:ping@192.0.2.1>;tag=1\r\nTo: <sip:192.0.2.2>;tag=as5a2b\r\nCall-ID: 1@192.0.2.1\r\nCSeq: 102 OPTIONS\r\nServer: Asterisk PBX 18.10.0\r\nAllow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\nSupported: replaces, timer\r\nContent-Length: 0\r\n\r\n",
		"SIP/2.0 404 Not Here\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\ni: k@x\r\nServer: kamailio (5.6.3 (x86_64/linux))\r\nl: 0\r\n\r\n",
		"\r\n\r\n", "SIP/2.0 100 Trying\n\n", "OPTIONS sip:a SIP/2.0\r\n", "SIP/2.0 2",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseSIPResponse(b)
		if err != nil {
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error message is not UTF-8: %q", err.Error())
			}
			return
		}
		if r.Code < 100 || r.Code > 699 {
			t.Fatalf("code %d accepted", r.Code)
		}
		if strings.ContainsAny(r.CallID, "\r\n") || strings.ContainsAny(r.Reason, "\r\n") {
			t.Fatalf("line break in a field: %+v", r)
		}
		// Re-serialising what was parsed must parse to the same thing.
		if r.CallID != "" && r.CSeqMethod != "" && !strings.ContainsAny(r.CSeqMethod+r.CallID+r.Branch+r.Reason, ",;\x00") {
			again := "SIP/2.0 " + itoa3(r.Code) + " " + r.Reason + "\r\nVia: SIP/2.0/UDP h;branch=" + r.Branch +
				"\r\nCall-ID: " + r.CallID + "\r\nCSeq: " + uitoa(r.CSeq) + " " + r.CSeqMethod + "\r\n\r\n"
			r2, err := ParseSIPResponse([]byte(again))
			if err != nil || r2 != r {
				t.Fatalf("round trip of %+v gave %+v, %v", r, r2, err)
			}
		}
	})
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

func uitoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("812 (asterisk) S 1 812 812 0 -1 4194560 ..."))
	f.Add([]byte("9 (a (weird) name) Z 1"))
	f.Add([]byte("1 () R"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, state, ok := ParseStat(b)
		if !ok {
			return
		}
		if !strings.Contains(string(b), "("+comm+") "+string([]byte{state})) {
			t.Fatalf("comm %q state %q not found as such in %q", comm, state, b)
		}
	})
}

func FuzzParseCodes(f *testing.F) {
	for _, s := range []string{"", "any", "200", "200-299,404", " 100 - 199 , 500 ", "2xx", "-", ",", "699-100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := parseCodes(s, 100, 699)
		if err != nil {
			return
		}
		for _, r := range set {
			if r.lo < 100 || r.hi > 699 || r.lo > r.hi {
				t.Fatalf("%q gave range %v", s, r)
			}
		}
		// The printed form parses back to the same set.
		again, err := parseCodes(set.String(), 100, 699)
		if err != nil || again.String() != set.String() {
			t.Fatalf("%q → %q → %v %v", s, set.String(), again, err)
		}
	})
}
