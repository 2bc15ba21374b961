package health

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// tcpProbe connects to an address: the service accepts connections.
//
// Parameters:
//
//	address  host:port, such as "127.0.0.1:5038" (required)
type tcpProbe struct {
	addr string
}

func newTCP(check string, p map[string]string) (prober, error) {
	addr, err := checkHostPort(check, "address", p["address"])
	if err != nil {
		return nil, err
	}
	return &tcpProbe{addr: addr}, nil
}

// checkHostPort validates a host:port parameter.
func checkHostPort(check, key, s string) (string, error) {
	const want = "host:port, such as 127.0.0.1:5060 or [::1]:5060"
	if s == "" {
		return "", paramError(check, key, "missing", want)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", paramError(check, key, fmt.Sprintf("%q is not host:port", s), want)
	}
	if host == "" {
		return "", paramError(check, key, fmt.Sprintf("%q has no host", s), want)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", paramError(check, key, fmt.Sprintf("port %q is not a number from 1 to 65535", port), want)
	}
	return s, nil
}

func (t *tcpProbe) probe(ctx context.Context) (string, error) {
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return "", err
	}
	c.Close()
	return fmt.Sprintf("connected to %s in %s", t.addr, time.Since(start).Round(time.Microsecond)), nil
}
