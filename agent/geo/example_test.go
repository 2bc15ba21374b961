package geo_test

import (
	"context"
	"log"
	"time"

	"github.com/hatui/hatui/agent/geo"
)

// siteService stands for the agent's driver of the local cluster.
type siteService struct{}

func (siteService) StartServing(context.Context) error { return nil }
func (siteService) StopServing(context.Context) error  { return nil }

// ExampleOpen shows how an agent wires the geo manager: its config, a
// stream layer (here plain TCP; the agent wraps its authenticated
// channel), the site's service, Serf's view of the sites, and alerts.
func ExampleOpen() {
	cfg := geo.Config{
		Node: "pbx-a1", Site: "a", InitialHolder: "a",
		Voters: []geo.Voter{
			{Node: "pbx-a1", Site: "a", Addr: "10.0.1.1:7950"},
			{Node: "pbx-b1", Site: "b", Addr: "10.0.2.1:7950"},
			{Node: "arb1", Site: "arb", Addr: "10.0.3.1:7950", Arbitrator: true},
		},
		DeadMan: 2 * time.Hour,
		DataDir: "/var/lib/ha-agent/geo",
	}
	layer, err := geo.NewTCPStreamLayer("10.0.1.1:7950", nil)
	if err != nil {
		log.Fatal(err)
	}
	m, err := geo.Open(cfg, geo.Deps{
		Stream:    layer,
		Service:   siteService{},
		Reachable: func() map[string]bool { return map[string]bool{"b": true, "arb": true} },
		Notifier:  geo.NotifyFunc(func(e geo.Event) { log.Printf("geo %s at %s: %s", e.Kind, e.Site, e.Message) }),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// The console's status and the operator's verbs.
	_ = m.Status()
	res, err := m.Confirm(context.Background(), "b", "ops@noc")
	if err != nil {
		log.Printf("refused: %v", err)
		return
	}
	log.Print(res)
}
