package sshtest

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestServerForwardsToUnixSocket checks the harness itself: OpenSSH's own
// client reaches the echo socket through the server by stream local
// forwarding, with the generated known_hosts and user key.
func TestServerForwardsToUnixSocket(t *testing.T) {
	srv := Start(t, Config{})
	sock := EchoSocket(t)
	kh := KnownHostsFile(t, false, srv)

	cb, err := knownhosts.New(kh)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
		User:            srv.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(srv.UserKey)},
		HostKeyCallback: cb,
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh to harness server: %v", err)
	}
	defer c.Close()
	nc, err := c.Dial("unix", sock)
	if err != nil {
		t.Fatalf("stream local forward: %v", err)
	}
	defer nc.Close()
	fmt.Fprintln(nc, "ping")
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("read %q, %v; want echo: ping", line, err)
	}
}

// TestOpenSSHClientAccepts checks the files the harness writes are what
// the OpenSSH client expects (the format the console reads from ~/.ssh).
func TestOpenSSHClientAccepts(t *testing.T) {
	ssh := RequireTool(t, "ssh")
	srv := Start(t, Config{})
	kh := KnownHostsFile(t, true, srv)
	out, err := exec.Command(ssh, "-F", "none", "-i", srv.UserKeyPath, "-p", fmt.Sprint(srv.Port),
		"-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
		srv.User+"@"+srv.Host, "echo", "hello").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello") {
		t.Fatalf("ssh through harness: %v: %s", err, out)
	}
}
