package metrics_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/agenttest"
	"github.com/hatui/hatui/protocol"
)

// scrape fetches /metrics with a real HTTP client and parses it with
// Prometheus's own text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return fams
}

// value finds the gauge of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

// TestMetricsOfRealAgents: two real agents, metrics on one (localhost by
// default), scraped by an HTTP client and parsed: every node up and
// online, then a node in standby shows as such.
func TestMetricsOfRealAgents(t *testing.T) {
	ip1, ip2 := "127.0.32.1", "127.0.32.2"
	cfg1 := agenttest.Config(t, agenttest.Node{Name: "pbx-1", Site: "a", IP: ip1, Extra: "[metrics]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"})
	cfg2 := agenttest.Config(t, agenttest.Node{Name: "pbx-2", Site: "a", IP: ip2, Join: []string{ip1 + ":7946"}})
	a1, err := agent.New(cfg1, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a1.Kill() })
	a2, err := agent.New(cfg2, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a2.Kill() })
	addr := a1.MetricsAddr()
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("metrics on %q, want localhost", addr)
	}
	agenttest.WaitFor(t, 10*time.Second, "both nodes up in the metrics", func() (bool, string) {
		fams := scrape(t, addr)
		up1, _ := value(fams, "hatui_node_up", map[string]string{"node": "pbx-1"})
		up2, _ := value(fams, "hatui_node_up", map[string]string{"node": "pbx-2"})
		return up1 == 1 && up2 == 1, fmt.Sprintf("up %v %v", up1, up2)
	})
	fams := scrape(t, addr)
	if v, ok := value(fams, "hatui_agent_info", map[string]string{"node": "pbx-1"}); !ok || v != 1 {
		t.Fatalf("hatui_agent_info missing: %v %v", v, ok)
	}
	if v, ok := value(fams, "hatui_node_state", map[string]string{"node": "pbx-2", "state": "online"}); !ok || v != 1 {
		t.Fatalf("pbx-2 online state: %v %v", v, ok)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if v, ok := value(fams, name, nil); !ok || v <= 0 {
			t.Errorf("%s: %v %v, want the agent's own figure", name, v, ok)
		}
	}
	c := agenttest.Connect(t, cfg1.Socket.Path)
	if _, err := c.Do(context.Background(), protocol.Action{Verb: "standby", Args: []string{"pbx-2"}}, nil); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitFor(t, 10*time.Second, "pbx-2 in standby in the metrics", func() (bool, string) {
		v, ok := value(scrape(t, addr), "hatui_node_state", map[string]string{"node": "pbx-2", "state": "standby"})
		return ok && v == 1, "not yet"
	})
}
