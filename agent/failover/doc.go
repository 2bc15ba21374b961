// Package failover decides, on each node of a local cluster, which node
// holds the service group (virtual IP, PBX service, database role), and
// makes sure no two nodes ever hold it at once.
//
// # Failure detection
//
// Peers are watched over several heartbeat paths ([Path]): the Serf pool
// ([SerfPath]), a point-to-point serial cable ([SerialPath]) and a
// dedicated NIC ([NICPath]), the last two sending small heartbeats signed
// with the cluster key (edgeBOX's redundant serial link against split
// brain). A peer is failed only when every configured path has been
// without two-way contact for the dead time; each path's state is shown
// as a protocol.Link.
//
// # Decisions
//
// The decision state (who holds the group, at which epoch, the nodes'
// flags and views, operator actions in progress) is replicated with
// hashicorp/raft among the voters: the nodes and an optional witness. A
// node starts the group only after the log records it as the holder at
// an epoch its own engine took, so two nodes can never both be told to
// run it. How a standby may take the group from a failed holder depends
// on the voters:
//
//   - Three or more voters: a majority of voters must report the holder
//     failed at the current epoch. A holder that loses contact with a
//     majority stops its group first (self-fence), by the timing rule in
//     [Timing]. With a fencing device the old holder is also powered off,
//     and the group starts without waiting. Without a majority nothing is
//     taken over, fencing or not: a fenced node that boots again could
//     form the old majority with a voter this node cannot reach.
//   - Two nodes with fencing: the survivor powers the other off through a
//     [Fencer] and, only once the off is verified, records the fence,
//     recovers the raft group alone and takes over. A fence that fails
//     leaves the group stopped, and the status says so.
//   - Two nodes without fencing or witness: only with an explicit
//     allow_two_node_risk; the status carries the risk in Quorum.Risks.
//
// A node in standby never holds the group; in maintenance nothing is
// started or stopped on it. Health checks (agent/health) act through the
// engine: minor failures are events, major ones restart the resource, a
// resource past its migration threshold or a fatal check makes the holder
// hand the group on.
//
// # Operator actions
//
// [Engine.Plan] checks an action and returns a [Job] reporting steps:
// standby, online, switchover (the standby is made ready before the
// active lets go: restoration, activation, auditing, clean-up, standby
// role relay), maintenance, cleanup, fence, activate (with a dry run that
// runs the checks and changes nothing) and disable (standby side first).
// Refusals are *protocol.Error with CodeRefused and a hint.
//
// # Wiring
//
// An agent builds the group with [BuildGroup], one [Path] per configured
// heartbeat path ([NewSerfPath] on its Serf pool, [NewSerialPath],
// [NewNICPath]), a [PowerFencer] when it has fencing devices, and calls
// [Open]. Each voter, the witness included, runs one engine. The agent
// then answers operator verbs with [Engine.Plan] and fills its snapshot
// from [Engine.Status]; [Deps].OnEvent feeds its event log and alerts.
//
// # Restarts
//
// The decision state lives in DataDir (raft-wal log, file snapshots). An
// action whose runner restarted half-way is resumed when the holder had
// already let go, and rolled back otherwise; the engine says which with an
// EvResumed or EvRolledBack event.
//
// An agent that dies leaves its resources running. Give the nodes fencing
// devices (the standby then powers the node off first), or wire
// Deps.Kick to a watchdog that resets the node sooner than a peer may
// take over; otherwise a peer can take over while the dead agent's PBX
// still runs, and Open refuses such a node unless
// Config.AllowAgentCrashRisk accepts it (the status then names it in
// Quorum.Risks). When the engine opens, before its raft log does, it
// stops whatever of the group runs on the node (unless the node's own
// copy of the log says the group is unmanaged there), and starts it again
// only once the log confirms this node at a newer epoch.
//
// # Before a start
//
// Before the group starts on a node, the node asks whether another host
// still answers for it: the virtual IP's ARP probe (resource.InUse) and,
// for SIP checks of a virtual IP, one SIP OPTIONS. While something
// answers, the group is not started: the previous holder is fenced when
// a device can, else the node waits and looks again; the group's reason
// says why and an EvInUse event (an alert) says it once per epoch.
package failover
