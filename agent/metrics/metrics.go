// Package metrics serves the deployment's state to Prometheus: nodes,
// clusters, groups, databases, the geo ticket and switches as gauges, read
// from the agent's deployment view at each scrape, so what a NOC graph
// shows is what the console shows.
//
// It is off unless configured, and listens on localhost unless told
// otherwise: the state of a telephony deployment is nobody else's
// business, and a scraper on another host can reach it through an SSH
// tunnel or a configured address.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hatui/hatui/protocol"
)

// DefaultListen is where metrics are served when enabled without an
// address.
const DefaultListen = "127.0.0.1:9464"

// Server serves /metrics.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Serve starts serving the metrics of the snapshots state returns on
// listen. version names the agent in hatui_agent_info.
func Serve(listen, node, version string, state func() *protocol.Snapshot) (*Server, error) {
	if listen == "" {
		listen = DefaultListen
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{node: node, version: version, state: state})
	// The agent's own health: goroutines and heap (go_*), resident memory,
	// open files and CPU (process_*), what a long run watches for leaks.
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics on %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

// Addr is where the server listens.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("hatui_"+name, help, labels, nil)
}

var (
	descInfo       = desc("agent_info", "The agent answering the scrape (always 1).", "node", "version")
	descNodeUp     = desc("node_up", "1 when the node's agent answers on the cluster network.", "site", "cluster", "node")
	descNodeState  = desc("node_state", "1 for the node's state as crm_mon would name it.", "site", "cluster", "node", "state")
	descQuorum     = desc("cluster_quorum", "1 when the cluster can decide on its own.", "site", "cluster")
	descVoters     = desc("cluster_voters_present", "Voters of the cluster present now.", "site", "cluster")
	descRisks      = desc("cluster_risks", "Risks the cluster shows to the operator.", "site", "cluster")
	descFailed     = desc("cluster_failed_actions", "Failed actions listed for the cluster.", "site", "cluster")
	descGroup      = desc("group_state", "1 for the service group's state.", "site", "cluster", "group", "state")
	descGroupOn    = desc("group_active", "1 on the node that holds the service group.", "site", "cluster", "group", "node")
	descDBRole     = desc("database_role", "1 for the database instance's role.", "site", "cluster", "node", "role")
	descDBLag      = desc("database_lag_bytes", "Bytes the standby is behind its master.", "site", "cluster", "node")
	descDBStream   = desc("database_streaming", "1 when the standby streams from its master.", "site", "cluster", "node")
	descDBHealthy  = desc("database_healthy", "1 when the representative query answered.", "site", "cluster", "node")
	descSwitchOK   = desc("switch_reachable", "1 when the switch's driver reaches the device.", "site", "cluster", "switch", "kind")
	descSwitchPos  = desc("switch_position", "1 for the node a line switch's lines go to.", "site", "cluster", "switch", "position")
	descGeoHolder  = desc("geo_ticket_holder", "1 for the site that holds the geo ticket.", "ticket", "site")
	descGeoPending = desc("geo_failover_pending_seconds", "Seconds left on the dead man's timer of a pending geo failover.", "from", "to")
	descGeoSite    = desc("geo_site_reachable", "1 when the site is reachable from the geo voters.", "site")
)

// collector turns one snapshot into gauges at each scrape.
type collector struct {
	node, version string
	state         func() *protocol.Snapshot
}

func (c collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	gauge(descInfo, 1, c.node, c.version)
	s := c.state()
	if s == nil {
		return
	}
	for _, site := range s.Sites {
		for _, cl := range site.Clusters {
			sc := []string{site.Name, cl.Name}
			gauge(descQuorum, b(cl.Quorum.HasQuorum), sc...)
			gauge(descVoters, float64(cl.Quorum.Present), sc...)
			gauge(descRisks, float64(len(cl.Quorum.Risks)), sc...)
			gauge(descFailed, float64(len(cl.Failed)), sc...)
			for _, n := range cl.Nodes {
				gauge(descNodeUp, b(n.Member == protocol.MemberAlive), site.Name, cl.Name, n.Name)
				gauge(descNodeState, 1, site.Name, cl.Name, n.Name, string(n.State))
			}
			for _, g := range cl.Groups {
				gauge(descGroup, 1, site.Name, cl.Name, g.Name, g.State)
				if g.Active != "" {
					gauge(descGroupOn, 1, site.Name, cl.Name, g.Name, g.Active)
				}
			}
			for _, d := range cl.Databases {
				gauge(descDBRole, 1, site.Name, cl.Name, d.Node, d.Role)
				gauge(descDBLag, float64(d.LagBytes), site.Name, cl.Name, d.Node)
				gauge(descDBStream, b(d.Streaming), site.Name, cl.Name, d.Node)
				gauge(descDBHealthy, b(d.Healthy), site.Name, cl.Name, d.Node)
			}
			for _, sw := range cl.Switches {
				gauge(descSwitchOK, b(sw.Reachable), site.Name, cl.Name, sw.Name, sw.Kind)
				if sw.Position != "" {
					gauge(descSwitchPos, 1, site.Name, cl.Name, sw.Name, sw.Position)
				}
			}
		}
	}
	if g := s.Geo; g != nil {
		if g.Ticket.Holder != "" {
			gauge(descGeoHolder, 1, g.Ticket.Name, g.Ticket.Holder)
		}
		if p := g.Pending; p != nil {
			gauge(descGeoPending, max(0, time.Until(p.Expires).Seconds()), p.From, p.To)
		}
		for _, site := range g.Sites {
			gauge(descGeoSite, b(site.Reachable), site.Name)
		}
	}
}
