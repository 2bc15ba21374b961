package alert

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeRecord: a queue file torn by a power cut or edited by hand
// never panics the agent at start, and what decodes encodes back to the
// same record.
func FuzzDecodeRecord(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/queue/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"alert":{"id":"x"`))
	f.Add([]byte(`{"version":1,"alert":{"id":"x","time":"not a time"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if r.Alert.ID == "" || r.Version != recordVersion {
			t.Fatalf("accepted %+v", r)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encoding an accepted record: %v", err)
		}
		r2, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		b1, _ := json.Marshal(r2)
		if string(b1) != string(again) {
			t.Fatalf("record changed on a round trip: %s then %s", again, b1)
		}
	})
}

// TestQueueFixturesDecode keeps the seed corpus honest: the fixtures are
// what this version writes.
func TestQueueFixturesDecode(t *testing.T) {
	seeds, _ := filepath.Glob("testdata/queue/*.json")
	if len(seeds) == 0 {
		t.Fatal("no fixtures in testdata/queue")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeRecord(b); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
