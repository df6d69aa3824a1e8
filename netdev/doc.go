// Package netdev gives containers a network: Linux bridges and veth pairs
// made through netlink, address management (IPAM) on disk, NAT and
// published ports through nftables, and the /etc/hosts and
// /etc/resolv.conf files a container sees. It is the layer under berth's
// bridge network mode and is usable on its own: a "container" here is any
// network namespace, given by path or by the pid of a process in it.
//
// # Model
//
// A [Manager] owns the networks of one root directory (Root/networks) and
// shares the host with every other Manager through a run directory (RunDir,
// default /run/berth) that holds the host-wide state and its lock: which
// bridge names, subnets and host ports are taken, and by which root. Each
// root removes only what it created; two programs with different roots (a
// temporary root per test package is common) coexist on one host, and two
// processes sharing a root never hand out the same address, because every
// change is made under a file lock (flock). Lock order is always root
// lock, then host lock.
//
// State files are written on every Attach and Detach, so they are not
// replaced by rename (which costs about a millisecond on ext4, where a
// rename over a file flushes the new one): each state has two checksummed
// slot files (Root/networks/<name>.net.a and .b, RunDir/host.a and .b),
// overwritten in place in turn, and readers take the newest valid slot, so
// a crash at any instant leaves the new version or the previous one. Only
// a network's creation is fsynced: addresses, ports and links do not
// survive a reboot anyway, and the host state of a previous boot (its boot
// id differs) is ignored.
//
// Networks are per root: two roots may both have a network called "web";
// each gets its own bridge, whose name and subnet are unique host-wide. The
// default network [DefaultNetwork] ("berth0") is created on first use on a
// private subnet chosen so that it overlaps no route or address of the host
// and no other berth network (Docker's pools: 172.17-31.0.0/16, then
// 192.168.0.0/16 in /20 steps, then 10.0.0.0/8 in /16 steps). Its bridge is
// named berth0 unless another root's default network holds that name.
//
// An endpoint is one container's membership of one network: a veth pair
// whose host end (named "berth" + 7 random hex digits) is a port of the
// bridge and whose other end is created directly inside the container's
// namespace under its final name (eth0, eth1, ...), so it never exists, even
// briefly, under a temporary name, and never needs a move between
// namespaces (which costs the kernel as much as a deletion). Its MAC
// address is derived from its IP address (02:42:a.b.c.d, as Docker does),
// so a reused address never meets a stale neighbour entry. Addresses are
// handed out round-robin. Attach returns once the kernel's link-watch work
// has brought both ends (and the bridge) operationally up: before that a
// device's queue drops every packet, so a container's first ARP request or
// SYN would be lost for up to a second on a busy host.
//
// Detach cuts the endpoint off at once (host end down, ports unpublished,
// names removed from hosts files) and deletes the veth pair in the
// background: the kernel spends 10-20 ms per link deletion waiting for RCU
// grace periods, which would dominate the cost of a container's network.
// The address is free at once: the old pair is down, so it carries nothing
// (and the bridge forgets its MAC address) while the kernel finishes. Close
// waits for pending deletions; RemoveNetwork, and an Attach to a namespace
// that still holds the old pair's interface, wait for the ones in their way.
// A process that dies with deletions pending leaves nothing behind (the
// kernel completes a started deletion), except in the instant before the
// request is sent: then the pair, down and addressless on the host side,
// lives until the container's namespace goes.
//
// # Packet filtering and NAT
//
// All rules live in one nftables table of family ip (IPv4; default name
// "berth", the Table field) shared by every Manager using the same RunDir,
// and nowhere else: no other table is read or touched, and no ruleset is
// flushed. Its chains:
//
//   - prerouting (nat, dstnat) and output (nat, dstnat): DNAT of published
//     ports. A port published on all addresses matches "fib daddr type
//     local", so it is reachable on every address of the host, including
//     127.0.0.1 and the bridge's gateway address, from other hosts and from
//     the host itself.
//   - postrouting (nat, srcnat): masquerade of traffic from each bridge
//     subnet leaving through any other interface; masquerade of 127.0.0.0/8
//     sources leaving through a bridge, which with
//     net.ipv4.conf.<bridge>.route_localnet=1 makes 127.0.0.1:port work
//     without a userland proxy (Docker's userland-proxy=false design); and
//     hairpin masquerade for a container reaching a published port of its
//     own network through a host address.
//   - forward (filter): isolation first (a packet from one berth bridge to
//     another is dropped, through the named set "bridges"; an internal
//     network's traffic never leaves its bridge), then accept rules for the
//     bridges.
//   - raw (filter, prerouting, priority raw): traffic between two
//     containers of one bridge skips conntrack. With br_netfilter loaded
//     (bridge-nf-call-iptables=1, common and the case here) switched frames
//     still pass the IP hooks and conntrack. Measured here (alternating
//     transfers, BenchmarkThroughput): a bridge carries 0.88 of a plain
//     veth pair's rate without this rule, 0.90-0.95 with it.
//
// An endpoint with published ports has hairpin mode on its bridge port, so
// it can reach its own published port through a host address. Publishing
// or unpublishing a UDP port deletes the conntrack entries of that port, so
// a flow seen before the change does not keep its old translation.
//
// Every rule carries a comment naming its owner, "net=<bridge>" for a
// network's rules and "ep=<bridge>/<veth>" for an endpoint's published
// ports, so rules are removed per network and per container, and the rules
// of a crashed owner are found again. The table is deleted when the last
// network of the run directory is removed. net.ipv4.ip_forward is switched
// on when a bridge is created and left on (as Docker does).
//
// # Names
//
// Containers on one user-defined network resolve each other through
// /etc/hosts, not an embedded DNS server: each network keeps its name and
// alias to address map in its state, and an endpoint attached with
// EndpointConfig.HostsPath has that file rewritten in place (it is a bind
// mount target, so never replaced by rename) whenever a container joins or
// leaves one of its networks. The default network does not publish names,
// as in Docker. [ResolvConf] builds resolv.conf from the host's, dropping
// loopback name servers (unreachable from a container's namespace) and
// falling back to Docker's public resolvers when none is left.
//
// # Crashes
//
// Every endpoint records its owner (pid, process start time and boot id):
// the container's process when Attach was given a Pid, the attaching
// process otherwise. [Manager.Cleanup] removes the links, rules, host ports
// and addresses of endpoints whose owner is gone, and the bridges and rules
// of networks whose root no longer exists. A host state written before a
// reboot is discarded on first read.
//
// # When not to use it
//
// netdev does IPv4 bridges only: no IPv6, macvlan, overlay networks or
// embedded DNS. It must run as root (or with CAP_NET_ADMIN and
// CAP_SYS_ADMIN) in the host's network namespace.
package netdev
