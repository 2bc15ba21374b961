// Package sshdial is hatui's SSH transport: it reaches an agent's Unix
// socket on a node through the node's own OpenSSH server, by stream local
// forwarding (what ssh -L local.sock:/run/ha-agent/ha-agent.sock does),
// so the console needs nothing on the node but sshd and the agent.
//
// It behaves like ssh where an operator would notice: it reads
// ~/.ssh/config and /etc/ssh/ssh_config (the keywords hatui needs; see
// HostConfig), logs in with the ssh-agent and then the key files, checks
// known_hosts (asking about unknown hosts through a hook and always
// refusing changed keys), follows ProxyJump chains and sends
// keepalive@openssh.com requests so a dead node is noticed. Failures are
// *Error values whose Kind says which of these went wrong and whose text
// says what to do.
//
// A Dialer keeps one SSH connection per node and opens a stream on it per
// Dial; its Dial method is a protocol/client.DialFunc:
//
//	d, err := sshdial.New("ops@pbx-a1", sshdial.Options{
//		AskUnknown: sshdial.TerminalAsk(os.Stdin, os.Stderr), // nil under --exec
//	})
//	if err != nil { ... }
//	defer d.Close()
//	if err := d.Connect(ctx); err != nil { ... } // typed error, before the UI starts
//	conn, err := client.Connect(ctx, d.Dial, client.Options{...})
//
// # Design notes
//
// The client is golang.org/x/crypto/ssh in-process rather than the ssh
// binary (ssh -W, ControlMaster): errors stay typed, host key questions go
// through the console, and there is no child process to supervise. The
// price is re-implementing the ssh_config subset operators rely on; the
// parser follows ssh_config(5) (first value wins, Host and Match
// evaluation, Include scoping) and says which lines it cannot honour.
//
// sshd answers "open failed" whether forwarding is disabled, the socket is
// missing or the user may not open it. Rather than list every cause, the
// Dialer runs a read-only shell test on the node after such a refusal and
// names the one that applies (Options.NoDiagnose turns this off).
//
// x/crypto prefers ECDSA host keys; nodes usually have several and
// known_hosts (written by OpenSSH) holds the ED25519 one. The Dialer asks
// for the key types known_hosts already has for the host, as ssh does, so
// a known host is never mistaken for a changed one.
package sshdial
