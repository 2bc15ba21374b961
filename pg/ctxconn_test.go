package pg_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
)

// TestQueryStatusSilentServer: a server that accepts the connection and
// then never answers (a node that died with its link: no FIN, no RST)
// does not hold a status query past its context. lib/pq alone waits on
// the socket until TCP gives up, whatever the context says.
func TestQueryStatusSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	}()
	ci := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := pg.QueryStatus(ctx, ci)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("QueryStatus of a silent server succeeded")
		}
		t.Logf("QueryStatus returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("QueryStatus of a silent server still waits 5 s after its 300 ms context ended")
	}
}
