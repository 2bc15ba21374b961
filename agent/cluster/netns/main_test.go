//go:build linux

// Package netns_test runs local failover end to end: real ha-agent
// processes, one per network namespace (agent/netlab), two nodes, a
// witness and a client on one bridge, a real SIP service (sipp as UAS on
// the virtual IP), and the client asking it with SIP OPTIONS. A sampler
// checks every 50 ms (20 ms in the TestAgentCrash tests), for the whole of
// every test, that the VIP is never on an up interface of both nodes.
// Nodes that can hold the group feed a file standing for /dev/watchdog
// (this kernel has no softdog), and the harness resets a node whose agent
// stops feeding it, by taking its link down.
//
// The tests need root, ip, nft, sipp, socat and fence_dummy; without them
// they skip, or fail when CI=true. Run them with
//
//	go test -timeout 900s -count=1 ./agent/cluster/netns/
//	go test -timeout 1800s -count=1 -run '^$' -bench . -benchtime 1x ./agent/cluster/netns/
package netns_test

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/hatui/hatui/agent/agenttest"
)

// agentBin is the ha-agent binary TestMain built, "" when the build
// failed (buildErr says why; every test then fails with it).
var (
	agentBin string
	buildErr error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hatui-netns-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "netns tests: making a temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	agentBin, buildErr = agenttest.BuildAgent(dir)
	return m.Run()
}

// need ends t unless the machine can run these tests: skipped without
// the requirement when CI is unset, failed when CI=true.
func need(t testing.TB) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root (network namespaces)"
	}
	for _, bin := range []string{"ip", "nft", "sipp", "socat", "ss", "setsid"} {
		if _, err := exec.LookPath(bin); err != nil && missing == "" {
			missing = bin + " (apt-get install iproute2 nftables sip-tester socat)"
		}
	}
	if _, err := os.Stat(fenceDummy); err != nil && missing == "" {
		missing = fenceDummy + " (apt-get install fence-agents)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing %s", missing)
	}
	t.Skipf("missing %s (CI unset: skipping)", missing)
}

// needKamailio is need for the warm tests' PBX.
func needKamailio(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("kamailio"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("missing kamailio (apt-get install kamailio)")
	}
	t.Skip("missing kamailio (apt-get install kamailio; CI unset: skipping)")
}
