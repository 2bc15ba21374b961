package geosite

import (
	"fmt"

	"github.com/hatui/hatui/agent/alert"
	"github.com/hatui/hatui/agent/geo"
)

// alertOf turns a geo event into an alert: the site it concerns, who did
// it, and what the operator should do.
func (f *Feature) alertOf(e geo.Event, msg string) alert.Alert {
	c := f.h.Config()
	body := msg
	if a := advice(e); a != "" {
		body += "\n\n" + a
	}
	body += fmt.Sprintf("\n\nTicket %s; reported by %s (site %s).", e.Ticket, e.Node, c.Site)
	return alert.Alert{
		Time:       e.Time,
		Deployment: c.Deployment,
		Site:       e.Site,
		Node:       e.Node,
		Kind:       "geo-" + string(e.Kind),
		Severity:   string(e.Severity),
		Subject:    subject(c.Deployment, e),
		Message:    body,
		By:         e.Who,
	}
}
