package health

import (
	"context"
	"net"
	"os"
	"testing"
)

// BenchmarkParseSIPResponse measures parsing a typical 200 OK to OPTIONS.
func BenchmarkParseSIPResponse(b *testing.B) {
	msg := []byte(sippResponse)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := ParseSIPResponse(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSIPProbeLoopback measures one OPTIONS round trip against a
// responder on loopback: the check's own overhead, which should stay far
// below a millisecond so that the timeout measures the PBX, not us.
func BenchmarkSIPProbeLoopback(b *testing.B) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			h, _ := parseRequestHeaders(buf[:n])
			pc.WriteTo([]byte("SIP/2.0 200 OK\r\nVia: "+h["via"]+"\r\nCall-ID: "+h["call-id"]+"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), from)
		}
	}()
	c, err := New(spec("bench", "sip", map[string]string{"address": pc.LocalAddr().String()}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Probe(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessScan measures a process check scanning /proc by name.
func BenchmarkProcessScan(b *testing.B) {
	name, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		b.Skip("no /proc")
	}
	c, err := New(spec("self", "process", map[string]string{"name": string(name[:len(name)-1])}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Probe(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
