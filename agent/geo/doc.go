// Package geo is ha-agent's geo manager: it decides which site of a
// geo-redundant deployment provides service, and makes the sites follow
// that decision without ever serving from two sites at once.
//
// The model is Pacemaker's booth (a ticket with a lease that its holder
// renews, an acquire-after margin, a before-acquire handler) combined with
// silhouette's dead man's switch (a timer between the geo cluster's decision
// and the actual move of service, which staff can confirm or abort).
//
// # Two roles
//
// The geo role is what the ticket says: the site holding it is "primary",
// the others are "backup". The geo service role is what a site actually
// does: "serving" or "standby". They are kept apart on purpose. When the
// ticket moves, the service does not follow at once: the dead man's timer
// starts (two hours by default), the operators are alerted, and they either
// confirm (the service moves now), abort (the service stays and the ticket
// goes back), or let the timer expire (the service moves by itself).
//
// # One truth
//
// The ticket, the pending failover, the designated service site, each
// site's recorded service role and the history are the state of a
// [hashicorp/raft] state machine replicated among the geo voters: one or
// more agents per site plus the arbitrator at a third site. Every change is
// a raft log entry that the leader validates against the state before
// committing, and the state machine validates again when applying, so every
// voter reaches the same result. Times in the state are absolute wall-clock
// times stamped by the leader, so a restart resumes the same expiry; sites
// must keep their clocks synchronised (NTP), and the safety margin covers
// what skew remains.
//
// Raft alone does not forward writes from followers, so the manager carries
// its own small request ("apply this entry") to the leader on the same
// stream layer as raft's RPCs, distinguished by the first byte of each
// connection. The lead wraps that stream layer in the agent's authenticated
// channel: anyone who can open a connection on it can confirm a failover.
//
// # Why two sites never serve at once
//
// A site starts serving only after the state machine accepted its "serve"
// entry, which it accepts only while the site is the designated service
// site and every other site has either recorded that it stopped, or can be
// proven stopped by time, or the operator declared it down. The proof by
// time: a site that serves keeps a deadline computed from what it knows,
// and stops by itself when it passes, whether or not it can reach anyone:
//
//   - while it holds the ticket: its lease expiry + acquire-after + dead
//     man's timeout − safety margin. No other site can take the ticket
//     before the lease expiry + acquire-after, and the failover then waits
//     for the dead man's timer, so this is the earliest moment another site
//     could start serving by itself.
//   - while a failover away from it is pending: that failover's expiry −
//     safety margin.
//
// Knowledge only grows, and each step of it gives a later deadline, so a
// site with stale knowledge stops earlier, never later. The state machine
// lets another site start without a stop record only from the pending
// failover's expiry on, which is never before the old site's deadline plus
// the margin. In manual mode nothing fails over by itself, so a site never
// stops by itself; a mode change is honoured only once the serving site has
// acknowledged it, so a site isolated before the change cannot be surprised
// by it.
//
// The one exception is the operator's word: confirming a failover while the
// old site is unreachable, or granting the ticket while another site may
// still serve, is a statement that the old site is down (as in silhouette,
// and as crm_ticket warns). It is accepted, and the result says so loudly.
//
// # Restarts
//
// The raft log and snapshots are on disk (hashicorp/raft-wal and raft's
// FileSnapshotStore), so a restarted voter resumes the same ticket, term
// and dead man's expiry. A restarted agent does not know at once whether
// its local state is current, so until the leader confirms it (a no-op
// entry) it acts only on its self-stop deadline, which it also keeps in a
// small file so that a restart without a majority still stops in time. A
// restart never stops a site's service by itself.
//
// # Several agents per site
//
// Every agent of a site may drive its Service; the serve and stop records
// carry a generation so that a stale stop record never claims the site
// stopped while another agent started it. The agent should still let only
// its local cluster's active node drive (Deps.Driving), which leaves no
// room for two agents of one site to disagree.
//
// # Events
//
// Events (alerts, audit) come from the agent that made the change: the
// bidder for a new failover, the leader for an expiry, the agent an
// operator used for confirm, abort, grant and revoke. They are delivered at
// least once: when a reply was lost, the agent reports what the state shows
// it did, and another agent may have reported it too.
//
// # What the lead provides
//
// A [Service] per site (start and stop the site's service; both idempotent),
// a reachability function fed by the Serf geo pool, a [Notifier] for alerts
// and the audit log, and a raft.StreamLayer (see [NewTCPStreamLayer] for a
// plain one). Everything else is in [Open].
//
// [hashicorp/raft]: https://github.com/hashicorp/raft
package geo
