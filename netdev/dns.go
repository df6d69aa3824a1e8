package netdev

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// HostsEntry is one line of a hosts file: an address and its names.
type HostsEntry struct {
	IP    netip.Addr `json:"ip"`
	Names []string   `json:"names"`
}

// hostsHeader is what every container's /etc/hosts starts with (Docker's).
const hostsHeader = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::0	ip6-localnet
ff00::0	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// Hosts returns the content of a container's /etc/hosts: the localhost
// lines, then entries in order (typically the container's own address and
// name, the --add-host entries and the other containers of its user-defined
// networks). Entries without an address or names are skipped; names already
// listed are not repeated.
func Hosts(entries []HostsEntry) []byte {
	var b bytes.Buffer
	b.WriteString(hostsHeader)
	seen := map[string]bool{}
	for _, e := range entries {
		if !e.IP.IsValid() {
			continue
		}
		var names []string
		for _, n := range e.Names {
			if n != "" && !seen[e.IP.String()+" "+n] && !strings.ContainsAny(n, " \t\n#") {
				seen[e.IP.String()+" "+n] = true
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			continue
		}
		b.WriteString(e.IP.String())
		b.WriteByte('\t')
		b.WriteString(strings.Join(names, " "))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// FallbackDNS are the name servers a container gets when the host has none
// it can reach (Docker's defaults). berth's tests never query them.
func FallbackDNS() []string { return []string{"8.8.8.8", "8.8.4.4"} }

// ResolvConf returns a container's /etc/resolv.conf, made from the host's
// as Docker makes it. dns, search and options, when not empty, replace the
// host's nameserver, search and options lines (search ["."] means none).
// Name servers on loopback (127.0.0.0/8, ::1, such as systemd-resolved's
// 127.0.0.53) and IPv6 name servers (container networks are IPv4 only) are
// dropped, being unreachable from the container; when no name server is
// left, FallbackDNS is used. Other lines (comments, domain, sortlist) are
// kept.
func ResolvConf(hostResolvConf []byte, dns, search, options []string) []byte {
	var (
		servers, searches, opts []string
		other                   []string
	)
	sc := bufio.NewScanner(bytes.NewReader(hostResolvConf))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				servers = append(servers, f[1])
			}
		case "search":
			searches = f[1:]
		case "domain":
			if len(f) > 1 {
				searches = f[1:2]
			}
		case "options":
			opts = append(opts, f[1:]...)
		default:
			other = append(other, line)
		}
	}
	if len(dns) > 0 {
		servers = dns
	} else {
		servers = slices.DeleteFunc(slices.Clone(servers), func(s string) bool {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return true
			}
			a = a.Unmap()
			return a.IsLoopback() || !a.Is4()
		})
		if len(servers) == 0 {
			servers = FallbackDNS()
		}
	}
	if len(search) > 0 {
		searches = search
		if len(search) == 1 && search[0] == "." {
			searches = nil
		}
	}
	if len(options) > 0 {
		opts = options
	}
	var b bytes.Buffer
	for _, l := range other {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if len(searches) > 0 {
		b.WriteString("search " + strings.Join(searches, " ") + "\n")
	}
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(opts) > 0 {
		b.WriteString("options " + strings.Join(opts, " ") + "\n")
	}
	return b.Bytes()
}

// HostResolvConfPath returns the resolv.conf a container's should be made
// from, as Docker chooses it: /etc/resolv.conf, unless it names only
// systemd-resolved's stub listener (127.0.0.53), in which case the file
// with resolved's upstream servers, /run/systemd/resolve/resolv.conf, when
// it exists.
func HostResolvConfPath() string {
	const etc, resolved = "/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"
	b, err := os.ReadFile(etc)
	if err != nil {
		return etc
	}
	stubOnly := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if f[1] != "127.0.0.53" {
			return etc
		}
		stubOnly = true
	}
	if _, err := os.Stat(resolved); stubOnly && err == nil {
		return resolved
	}
	return etc
}
