// Package alert tells operators out of band, by webhook and e-mail, that
// something needs them: a geo failover became pending (the dead man's
// timer runs), was confirmed, aborted or expired; later local failovers
// and fencing.
//
// An alert must not be lost to a restart or to a mail server that is down
// for an hour, and raising one must never hold up the code that raises it
// (the geo manager's Notifier must not block). So [Sender.Send] writes the
// alert to the queue directory (one JSON file per alert: temporary file,
// fsync, rename, fsync of the directory) and hands it to one worker per
// target, which delivers that target's alerts in order. A failed delivery
// is logged and retried after [Config.Retry], doubling up to 5 minutes,
// at most [Config.MaxAttempts] times; then the alert is given up for that
// target with an error line naming target and alert. The file records which
// targets are done with the alert and is deleted when all are, so a restart
// ([New] re-queues what it finds) sends to the rest only. Delivery is at
// least once: a crash between a target's reply and the file's update sends
// again, with the same id.
//
// # Webhook body
//
// A webhook receives POST with Content-Type application/json and
// User-Agent hatui-ha-agent, "Authorization: Bearer <token>" when a token
// is set, and this body. The fields are stable; new ones may be added, none
// removed or renamed:
//
//	{
//	  "id": "1760000000000000001.pbx-a1", // unique; the same on every retry: deduplicate on it
//	  "time": "2026-01-02T03:04:05.123456789Z", // when it happened, RFC 3339
//	  "deployment": "acme-voice",
//	  "site": "b",                 // the site the alert is about
//	  "node": "pbx-a1",            // the node that raised it
//	  "kind": "geo-pending",       // geo-pending, geo-confirmed, geo-aborted, geo-expired, ...
//	  "severity": "critical",      // info, warning, critical
//	  "subject": "geo failover to site b pending",
//	  "message": "full text: who, the timer's expiry, what to do",
//	  "by": "alice"                // the operator who acted; "" for the agent itself
//	}
//
// Any 2xx reply means delivered. Redirects are not followed (a POST turned
// into a GET by a 302 would be a silent loss): point the URL at the final
// address.
//
// # E-mail
//
// One message per alert to all recipients, through one SMTP server, plain
// text (UTF-8, quoted-printable), with Date, Message-ID (<id@from-domain>),
// Auto-Submitted: auto-generated, and the subject
// "[<deployment>/<site>] <kind>: <subject>". X-Hatui-Kind, X-Hatui-Site and
// X-Hatui-Severity help mail filters. With STARTTLS configured, a server
// that does not offer it is an error: the agent never falls back to clear
// text. A recipient the server refuses while it accepts others is logged as
// an error and not retried (it would repeat the message to the others);
// when every recipient is refused the delivery is retried.
package alert
