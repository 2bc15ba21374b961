package sshdial

import (
	"testing"
	"time"

	"github.com/hatui/hatui/console/sshdial/sshtest"
)

// BenchmarkDialReused opens a stream to the agent socket over an
// established SSH connection: what every console reconnect to the same
// node costs.
func BenchmarkDialReused(b *testing.B) {
	srv := sshtest.Start(b, sshtest.Config{})
	sock := sshtest.EchoSocket(b)
	o := Options{SocketPath: sock, ConfigFiles: []string{}, Home: b.TempDir(), AgentSocket: "none",
		IdentityFiles: []string{srv.UserKeyPath}, KnownHostsFiles: []string{sshtest.KnownHostsFile(b, false, srv)}}
	d, err := New(srv.User+"@"+srv.Addr, o)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := b.Context()
	if err := d.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		nc, err := d.Dial(ctx)
		if err != nil {
			b.Fatal(err)
		}
		nc.Close()
	}
}

// BenchmarkConnect measures a fresh SSH login (TCP, key exchange, host
// key check, public key auth) to a local sshd.
func BenchmarkConnect(b *testing.B) {
	srv := sshtest.Start(b, sshtest.Config{})
	o := Options{ConfigFiles: []string{}, Home: b.TempDir(), AgentSocket: "none",
		IdentityFiles: []string{srv.UserKeyPath}, KnownHostsFiles: []string{sshtest.KnownHostsFile(b, false, srv)}}
	for b.Loop() {
		d, err := New(srv.User+"@"+srv.Addr, o)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Connect(b.Context()); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// BenchmarkKeepaliveDetection measures how long a frozen node goes
// unnoticed with a 100 ms keepalive interval and CountMax 2 (the goal:
// about interval*(CountMax+1), here ~300 ms).
func BenchmarkKeepaliveDetection(b *testing.B) {
	srv := sshtest.Start(b, sshtest.Config{})
	o := Options{ConfigFiles: []string{}, Home: b.TempDir(), AgentSocket: "none",
		IdentityFiles: []string{srv.UserKeyPath}, KnownHostsFiles: []string{sshtest.KnownHostsFile(b, false, srv)},
		KeepaliveInterval: 100 * time.Millisecond, KeepaliveCountMax: 2}
	var total time.Duration
	for b.Loop() {
		d, err := New(srv.User+"@"+srv.Addr, o)
		if err != nil {
			b.Fatal(err)
		}
		s, _, err := d.session(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		srv.Freeze()
		start := time.Now()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			b.Fatal("keepalive did not notice the frozen server")
		}
		total += time.Since(start)
		srv.Thaw()
		d.Close()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-notice")
}
