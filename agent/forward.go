package agent

import (
	"net"

	"context"

	"github.com/hatui/hatui/agent/peer"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// clientConn is a protocol session with another agent.
type clientConn = client.Conn

// dialPeer opens a protocol session over the peer channel, saying which
// agent forwards and for whom.
func dialPeer(ctx context.Context, d *peer.Dialer, addr, self, user string, role protocol.Role) (*clientConn, error) {
	c, err := client.Connect(ctx, func(ctx context.Context) (net.Conn, error) { return d.Dial(ctx, addr) },
		client.Options{Client: "ha-agent/forward", User: user, Forwarded: self, Role: role})
	if err != nil {
		if protocol.CodeOf(err) == protocol.CodeInternal {
			return nil, protocol.Errorf(protocol.CodeUnreachable, "check the cluster network between the nodes", "%v", err)
		}
		return nil, err
	}
	return c, nil
}
