// Package netlab builds small networks of Linux network namespaces for
// hatui's acceptance tests: hosts on L2 segments (bridges in a "switch"
// namespace of the lab's own), routers between segments with an optional
// userspace WAN delay, partitions with nftables, and processes started
// inside the hosts with their output kept in the test's temp dir.
//
// A lab belongs to one test. It needs root, ip(8) from iproute2 and nft(8)
// from nftables (and /dev/net/tun for a delay); without them New skips the
// test, or fails it when the environment variable CI is set (CI installs
// everything). All the lab made (namespaces, processes, the delay devices)
// is removed in the test's cleanup, also when the test fails, and New
// removes what a killed earlier run left behind.
//
// What a host looks like:
//
//   - Its namespace is named "hl<pid>-<seq>-<host>" (NS), the lab's
//     bridges live in "hl<pid>-<seq>-switch". Nothing appears in the root
//     namespace. Every lab has namespaces of its own, so parallel tests
//     and packages may use the same addresses.
//   - Its interfaces are eth0, eth1, ... in attach order, all veth with
//     MTU 1500 (the delay device too), MAC 02:6c:HH:HH:00:II (host number,
//     interface number). IPv6 addresses need no duplicate detection and,
//     like IPv4 ones, survive LinkDown.
//   - Only the network is separate: processes share the machine's pids,
//     hostname, users and files with everything else. A program that
//     takes its node name from the hostname needs it set explicitly.
//   - A process started with Command goes through `ip netns exec`, which
//     also gives it a mount namespace of its own with /sys remounted, so
//     /sys/class/net and /proc/net show the host's interfaces, and files
//     in /etc/netns/<NS>/ (if any) are bind-mounted over /etc.
//
// Methods that set the lab up or look it up (New, Net, Host, Attach,
// Router, Route, Cut, Heal, Isolate, Rejoin, LinkDown, LinkUp, SetDelay,
// Start, IP, Iface) end the test with t.Fatal when they fail, so call them
// from the test's goroutine. Do, HasAddr, Addrs and the methods of Proc
// may be called from any goroutine. The package works on Linux only.
package netlab
