package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadDeployments: a deployments file lists named deployments with
// their entries, the first tried first; a wrong file is refused saying
// what is wrong with it.
func TestReadDeployments(t *testing.T) {
	tests := []struct {
		name, text string
		want       []listed
		err        string
	}{
		{name: "two", text: "[[deployment]]\nname = \"s07\"\nentries = [\"ops@pbx-a1\", \"ops@arb\"]\n[[deployment]]\nname = \"s08\"\nentries = [\"ops@10.8.0.1:2222\"]\n",
			want: []listed{{name: "s07", entries: []string{"ops@pbx-a1", "ops@arb"}}, {name: "s08", entries: []string{"ops@10.8.0.1:2222"}}}},
		{name: "no entries", text: "[[deployment]]\nname = \"s07\"\n", err: `deployment "s07" has no entries`},
		{name: "no name", text: "[[deployment]]\nentries = [\"a\"]\n", err: "deployment 1 has no name"},
		{name: "twice", text: "[[deployment]]\nname = \"a\"\nentries = [\"x\"]\n[[deployment]]\nname = \"a\"\nentries = [\"y\"]\n", err: `"a" is listed twice`},
		{name: "typo", text: "[[deployment]]\nname = \"a\"\nentrys = [\"x\"]\n", err: "unknown key deployment.entrys"},
		{name: "not toml", text: "[[deployment\n", err: "reading"},
		{name: "empty", text: "", err: "lists no deployment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "deployments.toml")
			if err := os.WriteFile(p, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readDeployments(p)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, func(a, b listed) bool { return a.name == b.name && slices.Equal(a.entries, b.entries) }) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
