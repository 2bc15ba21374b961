package peer

import (
	"bufio"
	"context"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// echoServer starts a peer listener whose handler echoes one line.
func echoServer(t *testing.T, keys [][]byte) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", keys, func(c net.Conn) {
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			io.WriteString(c, "echo "+line)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSameKeyConnects(t *testing.T) {
	k := newKey(t)
	s := echoServer(t, [][]byte{k})
	d, _ := NewDialer([][]byte{k})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "hi\n")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "echo hi\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestRotationAcceptsOldAndNew(t *testing.T) {
	oldK, newK := newKey(t), newKey(t)
	// Server already uses the new key but still accepts the old one.
	s := echoServer(t, [][]byte{newK, oldK})
	d, _ := NewDialer([][]byte{oldK, newK})
	c, err := d.Dial(context.Background(), s.Addr().String())
	if err != nil {
		t.Fatalf("dial during rotation: %v", err)
	}
	c.Close()
}

func TestWrongKeyIsRejected(t *testing.T) {
	s := echoServer(t, [][]byte{newKey(t)})
	d, _ := NewDialer([][]byte{newKey(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, s.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("a peer with another key was accepted")
	}
	if !strings.Contains(err.Error(), "not part of this deployment") {
		t.Fatalf("error does not say why: %v", err)
	}
}

func TestUnauthenticatedBytesGetNothing(t *testing.T) {
	handled := make(chan struct{}, 1)
	s, err := Listen("127.0.0.1:0", [][]byte{newKey(t)}, func(c net.Conn) { handled <- struct{}{}; c.Close() })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"type":"hello","body":{"versions":[1]}}`+"\n")
	c.SetReadDeadline(time.Now().Add(6 * time.Second))
	b, _ := io.ReadAll(c) // the server sends its SSH banner, then hangs up
	if strings.Contains(string(b), "welcome") {
		t.Fatalf("plain protocol got an answer: %q", b)
	}
	select {
	case <-handled:
		t.Fatal("handler ran for an unauthenticated connection")
	default:
	}
}

func TestNoKeyNoListener(t *testing.T) {
	if _, err := Listen("127.0.0.1:0", nil, func(net.Conn) {}); err != ErrNoKey {
		t.Fatalf("Listen without key: %v, want ErrNoKey", err)
	}
}

func TestDialerReusesOneConnectionAndRecovers(t *testing.T) {
	k := newKey(t)
	s := echoServer(t, [][]byte{k})
	d, _ := NewDialer([][]byte{k})
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	echo := func() {
		t.Helper()
		c, err := d.Dial(ctx, s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "x\n")
		if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "echo x\n" {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	for i := 0; i < 5; i++ {
		echo()
	}
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("five sessions used %d TCP connections, want one", n)
	}
	// The server drops every connection: the next dial makes a new one.
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	echo()
}
