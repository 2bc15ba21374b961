// Package protocol defines the messages that ha-agent and hatui exchange,
// and the codec that carries them.
//
// # Framing
//
// A connection carries newline-delimited JSON: one [Envelope] per line,
// at most [MaxLineBytes] long. JSON lines were chosen over binary frames
// because an operator can read and type them with socat on a bad night,
// and because every language a monitoring script is written in can speak
// them. A line that is too long, not JSON, or of an unknown type is
// answered with an [Error] and the connection stays open: one bad message
// never costs the operator the session.
//
// # Versions
//
// The first message on a connection is a [TypeHello] from the client listing
// the protocol versions it speaks. The agent answers [TypeWelcome] with the
// highest version both sides know, or an [Error] with code
// [CodeUnsupportedVersion] naming both sides' versions, and closes.
// Fields are only ever added within a version; a reader ignores fields it
// does not know, so an old console can watch a newer agent.
//
// # Requests
//
// Every client request carries an id chosen by the client; every reply to it
// carries the same id. Replies to a request are one of:
//
//   - status:   [TypeStatus] → [TypeSnapshot] (or [TypeError])
//   - watch:    [TypeWatch] → [TypeSnapshot], then [TypeChange] for every change, until the connection closes or [TypeUnwatch]
//   - action:   [TypeAction] → [TypeRefused] | [TypeAccepted] → [TypeProgress]… → [TypeResult]
//
// # Example exchange
//
//	→ {"type":"hello","id":1,"body":{"versions":[1],"client":"hatui/0.1","user":"ops"}}
//	← {"type":"welcome","id":1,"body":{"version":1,"agent":"ha-agent/0.1","node":"pbx-a1","deployment":"acme"}}
//	→ {"type":"action","id":2,"body":{"verb":"standby","args":["pbx-a2"]}}
//	← {"type":"accepted","id":2,"body":{"verb":"standby","args":["pbx-a2"]}}
//	← {"type":"progress","id":2,"body":{"step":"forward","message":"asking pbx-a2's agent"}}
//	← {"type":"result","id":2,"body":{"ok":true,"message":"pbx-a2 is in standby"}}
//	→ {"type":"status","id":3,"body":{"node":"pbx-b9"}}
//	← {"type":"error","id":3,"body":{"code":"unknown_node","message":"no node named \"pbx-b9\" in deployment acme","hint":"run 'status' to list the nodes"}}
//
// This package imports only the standard library so that anything, from a
// fence script to the console, can speak to an agent.
package protocol
