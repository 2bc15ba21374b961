package protocol

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderTable(t *testing.T) {
	tests := []struct {
		name  string
		input string
		limit int
		want  []string // per read: a type, or "err:CODE", or "eof"
	}{
		{"one message", `{"type":"hello","id":1}` + "\n", 0, []string{"hello", "eof"}},
		{"no final newline", `{"type":"status","id":2}`, 0, []string{"status", "eof"}},
		{"blank lines skipped", "\n\n" + `{"type":"watch"}` + "\n\n", 0, []string{"watch", "eof"}},
		{"garbage then good", "garbage\n" + `{"type":"status"}` + "\n", 0, []string{"err:bad_request", "status", "eof"}},
		{"missing type", `{"id":3}` + "\n", 0, []string{"err:bad_request", "eof"}},
		{"two objects on a line", `{"type":"a"}{"type":"b"}` + "\n", 0, []string{"err:bad_request", "eof"}},
		{"oversize then good", strings.Repeat("x", 100) + "\n" + `{"type":"status"}` + "\n", 64, []string{"err:too_large", "status", "eof"}},
		{"oversize spanning buffers", strings.Repeat("y", 200000) + "\n" + `{"type":"ok"}` + "\n", 1000, []string{"err:too_large", "ok", "eof"}},
		{"exactly at limit", `{"type":"abcdefgh"}` + "\n", len(`{"type":"abcdefgh"}`), []string{"abcdefgh", "eof"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.input))
			if tt.limit > 0 {
				r.SetLimit(tt.limit)
			}
			for i, want := range tt.want {
				env, err := r.Read()
				var got string
				switch {
				case errors.Is(err, io.EOF):
					got = "eof"
				case err != nil:
					got = "err:" + string(CodeOf(err))
				default:
					got = string(env.Type)
				}
				if got != want {
					t.Fatalf("read %d: got %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	want := Action{Verb: "standby", Args: []string{"pbx-a2"}}
	if err := w.Send(TypeAction, 7, want); err != nil {
		t.Fatal(err)
	}
	env, err := NewReader(&buf).Read()
	if err != nil {
		t.Fatal(err)
	}
	var got Action
	if err := env.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if env.ID != 7 || env.Type != TypeAction || got.String() != "standby pbx-a2" {
		t.Fatalf("round trip gave %+v %+v", env, got)
	}
}

func TestNegotiate(t *testing.T) {
	if v, err := Negotiate([]int{0, 1, 7}); err != nil || v != 1 {
		t.Fatalf("Negotiate([0 1 7]) = %d, %v; want 1", v, err)
	}
	_, err := Negotiate([]int{2, 3})
	if CodeOf(err) != CodeUnsupportedVersion || !strings.Contains(err.Error(), "[2 3]") {
		t.Fatalf("Negotiate([2 3]) error = %v", err)
	}
}

func TestDeriveState(t *testing.T) {
	tests := []struct {
		m                       Membership
		standby, maint, unclean bool
		want                    NodeState
	}{
		{MemberAlive, false, false, false, StateOnline},
		{MemberAlive, true, false, false, StateStandby},
		{MemberAlive, true, true, false, StateMaintenance},
		{MemberFailed, true, false, false, StateOffline},
		{MemberFailed, false, false, true, StateUnclean},
		{MemberLeft, false, false, false, StateOffline},
	}
	for _, tt := range tests {
		if got := DeriveState(tt.m, tt.standby, tt.maint, tt.unclean); got != tt.want {
			t.Errorf("DeriveState(%s, standby=%v, maint=%v, unclean=%v) = %s, want %s", tt.m, tt.standby, tt.maint, tt.unclean, got, tt.want)
		}
	}
}

// FuzzDecodeLine checks that no input panics the decoder and that every
// accepted envelope has a type and re-encodes.
func FuzzDecodeLine(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","id":1,"body":{"versions":[1],"client":"hatui/0.1"}}`,
		`{"type":"action","id":2,"body":{"verb":"standby","args":["pbx-a2"]}}`,
		`{"type":"status","id":3,"body":{"node":"pbx-b1"}}`,
		`{"type":"change","id":4,"body":{"seq":1,"snapshot":{"deployment":"x","sites":[]}}}`,
		`{"type":""}`, `[]`, `null`, `{"type":"x","body":`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		env, err := DecodeLine(line)
		if err != nil {
			if CodeOf(err) != CodeBadRequest {
				t.Fatalf("decode error with code %s, want bad_request", CodeOf(err))
			}
			return
		}
		if env.Type == "" {
			t.Fatalf("accepted an envelope without type")
		}
		var snap Snapshot
		_ = env.Decode(&snap) // must not panic whatever the body
		var buf bytes.Buffer
		if err := NewWriter(&buf).Write(env); err != nil {
			t.Fatalf("accepted envelope does not re-encode: %v", err)
		}
	})
}
