package sshdial

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// diagnoseTimeout bounds the check run on the node after a refusal.
const diagnoseTimeout = 5 * time.Second

// socketError explains why sshd would not connect us to the agent socket.
// sshd answers "open failed" whether forwarding is disabled, the socket is
// missing or the user may not open it, so unless told not to, it asks the
// node with a read-only shell test which one it is.
func (d *Dialer) socketError(ctx context.Context, c *ssh.Client, cause *ssh.OpenChannelError) *Error {
	verdict, group, who := "", "", d.node().User
	if !d.opts.NoDiagnose {
		verdict, group, who = diagnose(ctx, c, d.opts.SocketPath, who)
	}
	return socketFailure(d.node(), d.opts.SocketPath, cause, verdict, group, who)
}

// socketFailure words the error for a diagnosis verdict (see diagnose).
func socketFailure(hop Hop, path string, cause error, verdict, group, who string) *Error {
	e := &Error{Kind: KindSocket, Host: hop.String(), Err: cause}
	forwarding := "the node's sshd must allow stream local forwarding: AllowStreamLocalForwarding yes (or local) in sshd_config " +
		"(see recipes/sshd/hatui.conf), DisableForwarding not set, and no restrict or no-port-forwarding on your authorized_keys line; reload sshd after a change"
	switch verdict {
	case "missing":
		e.Msg = fmt.Sprintf("there is no agent socket at %s on the node", path)
		e.Hint = "check that ha-agent runs there (systemctl status ha-agent, or sv status ha-agent) and that the console uses the socket path the agent's config sets"
	case "notsocket":
		e.Msg = fmt.Sprintf("%s on the node is not a socket", path)
		e.Hint = "the agent's socket path points at something else: check the agent's config and restart ha-agent"
	case "denied":
		if group == "" {
			group = "hatui"
		}
		e.Msg = fmt.Sprintf("user %s may not open %s on the node (it belongs to group %s)", who, path, group)
		e.Hint = fmt.Sprintf("on the node, add the user to that group: usermod -aG %s %s (it takes effect at the next login); see recipes/sshd/README.md", group, who)
	case "ok":
		e.Msg = fmt.Sprintf("sshd refused to forward to %s although the socket is there and open to %s", path, who)
		e.Hint = forwarding + "; if it is allowed, ha-agent may have stopped and left its socket behind (systemctl status ha-agent)"
	default:
		e.Msg = fmt.Sprintf("sshd could not connect to %s on the node", path)
		e.Hint = "either ha-agent is not running there (no socket), or your user is not in the socket's group (mode 0660, group hatui by default: usermod -aG hatui USER), or " + forwarding
	}
	return e
}

// diagnose runs a read-only shell test of path on the node. verdict is
// missing, notsocket, denied, ok, or "" when the test could not run
// (a restricted account, ForceCommand, no shell).
func diagnose(ctx context.Context, c *ssh.Client, path, user string) (verdict, group, who string) {
	who = user
	ctx, cancel := context.WithTimeout(ctx, diagnoseTimeout)
	defer cancel()
	sess, err := c.NewSession()
	if err != nil {
		return "", "", who
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	q := shellQuote(path)
	script := `p=` + q + `; d=$(dirname "$p"); u=$(id -un 2>/dev/null)
if [ -d "$d" ] && [ ! -x "$d" ]; then echo denied "$(stat -c %G "$d" 2>/dev/null)" "$u"
elif [ ! -e "$p" ]; then echo missing
elif [ ! -S "$p" ]; then echo notsocket
elif [ ! -w "$p" ] || [ ! -r "$p" ]; then echo denied "$(stat -c %G "$p" 2>/dev/null)" "$u"
else echo ok
fi`
	out, err := sess.Output(script)
	if err != nil {
		return "", "", who
	}
	return parseDiagnosis(string(out), who)
}

// parseDiagnosis reads the diagnosis script's one line of output.
func parseDiagnosis(out, user string) (verdict, group, who string) {
	who = user
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", "", who
	}
	switch f[0] {
	case "missing", "notsocket", "ok":
		return f[0], "", who
	case "denied":
		if len(f) > 1 {
			group = f[1]
		}
		if len(f) > 2 {
			who = f[2]
		}
		return "denied", group, who
	}
	return "", "", who
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
