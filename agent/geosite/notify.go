package geosite

import (
	"fmt"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/geo"
)

// alertKinds are the geo events an operator must hear of out of band:
// the dead man's timer started, someone confirmed or aborted, the timer
// ran out; plus the hand-made moves and a site stopping by itself.
var alertKinds = map[geo.EventKind]bool{
	geo.EventPending:   true,
	geo.EventConfirmed: true,
	geo.EventAborted:   true,
	geo.EventExpired:   true,
	geo.EventGranted:   true,
	geo.EventRevoked:   true,
	geo.EventSelfStop:  true,
}

// notify receives the geo manager's events on the agent that made them
// happen: it records each in the event log (and so in every console's
// event pane) with who did it, and raises an alert for those that need
// one. Neither blocks.
func (f *Feature) notify(e geo.Event) {
	msg := e.Message
	if e.Who != "" && !strings.Contains(msg, " by "+e.Who) {
		msg += " (by " + e.Who + ")"
	}
	pe := e.Protocol()
	pe.Message = msg
	f.h.Record(pe)
	if !alertKinds[e.Kind] {
		return
	}
	// The audit trail has the machine's decisions too, next to the
	// operators' verbs (which the agent audits itself).
	who := e.Who
	if who == "" {
		who = "geo-manager"
	}
	f.h.Audit("geo "+string(e.Kind)+" "+e.Site, who, "ok", msg)
	if !f.alerts {
		return
	}
	f.h.Alert(f.alertOf(e, msg))
}

// subject is an alert's one line: the kind and the site first, because
// that is what a phone's notification shows.
func subject(dep string, e geo.Event) string {
	switch e.Kind {
	case geo.EventPending:
		return fmt.Sprintf("[%s] GEO FAILOVER PENDING to site %s (from %s), automatic at %s", dep, e.To, e.From, e.Expires.UTC().Format(time.RFC3339))
	case geo.EventConfirmed:
		return fmt.Sprintf("[%s] geo failover to site %s confirmed by %s", dep, e.To, e.Who)
	case geo.EventAborted:
		return fmt.Sprintf("[%s] geo failover from site %s to %s aborted by %s", dep, e.From, e.To, orNone(e.Who))
	case geo.EventExpired:
		return fmt.Sprintf("[%s] GEO FAILOVER to site %s: dead man's timer expired", dep, e.To)
	case geo.EventGranted:
		return fmt.Sprintf("[%s] geo ticket granted to site %s by %s", dep, e.Site, e.Who)
	case geo.EventRevoked:
		return fmt.Sprintf("[%s] geo ticket revoked from site %s by %s", dep, e.Site, e.Who)
	case geo.EventSelfStop:
		return fmt.Sprintf("[%s] site %s stopped serving by itself", dep, e.Site)
	}
	return fmt.Sprintf("[%s] geo %s at site %s", dep, e.Kind, e.Site)
}

// advice is what the operator should do about an alert.
func advice(e geo.Event) string {
	switch e.Kind {
	case geo.EventPending:
		return fmt.Sprintf("Open hatui (geo pane) and either confirm (geo confirm %s: the service moves now) or abort (geo abort: the service stays at %s). If nobody acts, the service moves to %s by itself at %s.",
			e.To, e.From, e.To, e.Expires.UTC().Format(time.RFC3339))
	case geo.EventExpired:
		return fmt.Sprintf("Check that site %s serves and that site %s has stopped.", e.To, e.From)
	case geo.EventSelfStop:
		return fmt.Sprintf("Site %s lost contact with the other geo voters; check the WAN links.", e.Site)
	}
	return ""
}
