// Package pg controls PostgreSQL streaming replication for hatui's agent:
// the database part of silhouette's design (a master, a warm local standby
// and a geo standby at the backup site), with the custom resource agent's
// behaviour that the stock one lacked.
//
// # What it offers
//
//   - [Instance.Status] and [QueryStatus]: role, system identifier,
//     timeline, WAL positions; on a master every standby from
//     pg_stat_replication (lag in bytes and in time, the latter NULL when
//     idle), on a standby its WAL receiver and replay delay; replication
//     slots. [Status.Database] maps it onto the console's
//     protocol.Database.
//   - [HealthQuery]: a representative query against application tables
//     under a statement_timeout, because a live PID proves nothing when a
//     lock or a full disk stops every call.
//   - [Instance.Promote]: pg_promote(wait => true), only for the freshest
//     candidate within a lag limit, with the old master fenced or stopped,
//     and never a geo standby unless forced ([CheckPromote] is the
//     decision alone).
//   - [Instance.Reseed]: rebuild a standby from the one verified master
//     with pg_basebackup into a sibling directory, swapped in by rename
//     only once complete; the old data directory becomes a fallback image.
//     A journal makes it crash-safe: after the agent dies at any instant,
//     [Instance.Recover] says what happened and rolls back or resumes.
//   - Fallback images ([Instance.TakeImage], [ImageStore],
//     [Instance.RestoreImage]): local base backups in rotation, to start
//     from when replication or the database is broken.
//   - [Instance.StartStandby]: the cold-start rule. Told to start as a
//     standby with no running master, an instance does nothing at all and
//     says so; once one is promoted, data whose history is on the
//     master's is started as a standby of it, and data that cannot
//     stream is reported, never replaced here.
//   - [AssessStandby] and [Instance.Assess]: whether a running standby
//     streams, read from its own WAL receiver and its upstream's
//     pg_stat_replication row matched by application_name or client
//     address, however it was made; [Cannot] is the only evidence a
//     re-seed may start on by itself (another system identifier, a
//     timeline history the master's TIMELINE_HISTORY lacks, a lost slot,
//     missing or unreadable data).
//   - [Instance.Adopt]: a running standby under another name or without
//     a slot gets the node's by ALTER SYSTEM and a reload (slot created on
//     the master first), rolled back if it does not stream again;
//     [Instance.RecoverAdopt] finishes or rolls back one cut off.
//   - [Instance.PlanReseed] and [Instance.CheckSpace]: every refusal of a
//     re-seed, whether the copy fits included, before anything stops.
//   - [CatchUpMeter], [View] and [Absent]: the console's rows, with a
//     standby's catch-up, a master's slots and pg_wal's disk, notices
//     with what to do, and the row of a peer whose agent is gone.
//
// Every refusal is a [*RefusedError] with a stable [Reason], a message and
// a hint; it unwraps to a *protocol.Error with code "refused" (or "busy"),
// so the agent can send it to the console as it is.
//
// # Design choices
//
// Safety of data beats speed. The previous data directory is never
// deleted or written by this package: a re-seed builds the new one next to
// it, and only a rename (atomic, same file system) replaces it; the old one
// is kept as a fallback image and only leaves by image rotation, after a
// later operation has completed. The journal is written (temporary file,
// fsync, rename, fsync of the directory) before each step begins, and
// directories are recognised after a crash by inode, not by name, so
// recovery never mistakes the old data for the new.
//
// pg_basebackup -X stream forks a WAL receiver that a parent-death signal
// would not reach; it therefore runs under a shell in its own process
// group, which kills the group when the agent dies. A killed agent thus
// leaves no copy running that would hold the replication slot.
//
// The state of a stopped instance comes from pg_controldata, never from
// starting it: starting writes to the data directory, and the cold-start
// rule promises no file is touched.
//
// Timelines decide "ahead": a position on a later timeline is ahead
// whatever its LSN; one on an earlier timeline never is (its tail after
// the fork is what a re-seed replaces, and it is kept as an image).
//
// Connections are opened per call (lib/pq, one connection, closed after):
// an agent polls every few seconds and instances restart under it, so a
// pool would mostly hold broken connections. Each is closed when its
// call's context ends: lib/pq only sends a cancel request to the server
// and keeps reading, which never ends when the server's node crashed or
// its link was cut (no FIN, no RST) until TCP gives up minutes later.
//
// Commands (pg_ctl, pg_basebackup, pg_controldata) run as the server's
// user when the agent is root, in the C locale so their output parses.
// Starting and stopping go through the [Controller] interface, pg_ctl by
// default; an agent under systemd may prefer its own unit (note that
// systemd's default KillMode kills a postmaster started from the agent's
// cgroup when the agent restarts).
//
// The connection strings of peers are used by both lib/pq and
// pg_basebackup: keep to keywords both understand (host, port, user,
// password, dbname, sslmode, connect_timeout...).
package pg
