//go:build linux

package netdev

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
	chainRaw         = "raw"
	setBridges       = "bridges"
)

func (m *Manager) table() *nftables.Table {
	return &nftables.Table{Name: m.Table, Family: nftables.TableFamilyIPv4}
}

func (m *Manager) chains() map[string]*nftables.Chain {
	t := m.table()
	accept := nftables.ChainPolicyAccept
	return map[string]*nftables.Chain{
		chainPrerouting: {Name: chainPrerouting, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest},
		chainOutput: {Name: chainOutput, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest},
		chainPostrouting: {Name: chainPostrouting, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource},
		chainForward: {Name: chainForward, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept},
		chainRaw: {Name: chainRaw, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept},
	}
}

func netTag(bridge string) string      { return "net=" + bridge }
func epTag(bridge, veth string) string { return "ep=" + bridge + "/" + veth }
func comment(tag string) []byte        { return userdata.AppendString(nil, userdata.TypeComment, tag) }
func ruleTag(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}
func bridgesSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: setBridges, KeyType: nftables.TypeIFName}
}

func ifname(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

// Expression builders. Register 1 holds the value being tested.

func metaIs(key expr.MetaKey, op expr.CmpOp, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

func iif(name string, op expr.CmpOp) []expr.Any { return metaIs(expr.MetaKeyIIFNAME, op, ifname(name)) }
func oif(name string, op expr.CmpOp) []expr.Any { return metaIs(expr.MetaKeyOIFNAME, op, ifname(name)) }

// addrIn matches the source (offset 12) or destination (16) address against p.
func addrIn(offset uint32, p netip.Prefix) []expr.Any {
	mask := ipNet(p.Addr(), p.Bits()).Mask
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

func saddrIn(p netip.Prefix) []expr.Any { return addrIn(12, p) }

func daddrIs(a netip.Addr) []expr.Any {
	b := a.As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
	}
}

// daddrLocal matches packets addressed to any address of the host
// ("fib daddr type local").
func daddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func protoPort(proto string, port uint16) []expr.Any {
	p := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		p = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

const ipsDstNAT = 0x20 // IPS_DST_NAT in the conntrack status

func dnatTo(a netip.Addr, port uint16) []expr.Any {
	b := a.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: b[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func join(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func (m *Manager) conn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// ensureTable queues the table, its chains and set (all idempotent).
func (m *Manager) ensureTable(c *nftables.Conn) error {
	t := c.AddTable(m.table())
	for _, name := range []string{chainRaw, chainPrerouting, chainOutput, chainPostrouting, chainForward} {
		c.AddChain(m.chains()[name])
	}
	return c.AddSet(bridgesSet(t), nil)
}

// addNetworkRules installs the table (if missing) and a network's rules.
// The caller holds the host lock.
func (m *Manager) addNetworkRules(n *Network) error {
	c, err := m.conn()
	if err != nil {
		return err
	}
	if err := m.ensureTable(c); err != nil {
		return err
	}
	t := m.table()
	ch := m.chains()
	tag := comment(netTag(n.Bridge))
	br := n.Bridge
	add := func(chain string, e ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch[chain], Exprs: join(e...), UserData: tag})
	}
	insert := func(chain string, e ...[]expr.Any) {
		c.InsertRule(&nftables.Rule{Table: t, Chain: ch[chain], Exprs: join(e...), UserData: tag})
	}
	set := bridgesSet(t)
	if err := c.SetAddElements(set, []nftables.SetElement{{Key: ifname(br)}}); err != nil {
		return err
	}
	// Isolation, evaluated before any accept: drop from this bridge to any
	// other berth bridge. Internal networks never leave their bridge.
	insert(chainForward, iif(br, expr.CmpOpEq), oif(br, expr.CmpOpNeq),
		[]expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Lookup{SourceRegister: 1, SetName: setBridges}},
		[]expr.Any{verdict(expr.VerdictDrop)})
	// Traffic between two containers of one bridge is switched, but with
	// br_netfilter loaded (bridge-nf-call-iptables=1) it still passes the
	// IP hooks and conntrack. It needs neither NAT nor state: skip
	// conntrack for it (not for the gateway address, which published
	// ports reach through DNAT).
	gw := n.Gateway.As4()
	add(chainRaw, iif(br, expr.CmpOpEq), saddrIn(n.Subnet), addrIn(16, n.Subnet),
		[]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: gw[:]},
			&expr.Notrack{},
		})
	if n.Internal {
		insert(chainForward, iif(br, expr.CmpOpEq), oif(br, expr.CmpOpNeq), []expr.Any{verdict(expr.VerdictDrop)})
		insert(chainForward, oif(br, expr.CmpOpEq), iif(br, expr.CmpOpNeq), []expr.Any{verdict(expr.VerdictDrop)})
	} else {
		// Outbound NAT: from the subnet out of any other interface.
		add(chainPostrouting, saddrIn(n.Subnet), oif(br, expr.CmpOpNeq), []expr.Any{&expr.Masq{}})
		// 127.0.0.1:port -> container (route_localnet is on for the bridge).
		add(chainPostrouting, saddrIn(netip.MustParsePrefix("127.0.0.0/8")), oif(br, expr.CmpOpEq), []expr.Any{&expr.Masq{}})
		// Hairpin: a container reaching a published port of its own bridge.
		add(chainPostrouting, saddrIn(n.Subnet), oif(br, expr.CmpOpEq), ctBits(expr.CtKeySTATUS, ipsDstNAT), []expr.Any{&expr.Masq{}})
		add(chainForward, iif(br, expr.CmpOpEq), []expr.Any{verdict(expr.VerdictAccept)})
		add(chainForward, oif(br, expr.CmpOpEq), ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED),
			[]expr.Any{verdict(expr.VerdictAccept)})
		add(chainForward, oif(br, expr.CmpOpEq), ctBits(expr.CtKeySTATUS, ipsDstNAT), []expr.Any{verdict(expr.VerdictAccept)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: add rules of %s: %w", br, err)
	}
	return nil
}

// removeRules deletes the rules of the table whose comment satisfies match.
func (m *Manager) removeRules(chains []string, match func(tag string) bool) error {
	c, err := m.conn()
	if err != nil {
		return err
	}
	t := m.table()
	ch := m.chains()
	n := 0
	for _, name := range chains {
		var rules []*nftables.Rule
		for i := 0; ; i++ {
			rules, err = c.GetRules(t, ch[name])
			if err == nil || i == 5 {
				break
			}
		}
		if err != nil {
			// The library flattens the errno: ask whether the table is there.
			if _, terr := c.ListTableOfFamily(m.Table, nftables.TableFamilyIPv4); terr != nil {
				return nil // no table: nothing to remove
			}
			return fmt.Errorf("nftables: list %s: %w", name, err)
		}
		for _, r := range rules {
			if tag := ruleTag(r); tag != "" && match(tag) {
				if err := c.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: delete rules: %w", err)
	}
	return nil
}

// removeNetworkRules deletes a network's rules, its endpoints' rules and
// its element of the bridges set. The caller holds the host lock.
func (m *Manager) removeNetworkRules(bridge string) error {
	err := m.removeRules([]string{chainRaw, chainPrerouting, chainOutput, chainPostrouting, chainForward}, func(tag string) bool {
		return tag == netTag(bridge) || strings.HasPrefix(tag, "ep="+bridge+"/")
	})
	if err != nil {
		return err
	}
	c, err := m.conn()
	if err != nil {
		return err
	}
	if err := c.SetDeleteElements(bridgesSet(m.table()), []nftables.SetElement{{Key: ifname(bridge)}}); err != nil {
		return err
	}
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: remove %s from set %s: %w", bridge, setBridges, err)
	}
	return nil
}

// addPortRules publishes an endpoint's ports. The caller holds the host lock.
func (m *Manager) addPortRules(bridge, veth string, ip netip.Addr, ports []PortMapping) error {
	if len(ports) == 0 {
		return nil
	}
	c, err := m.conn()
	if err != nil {
		return err
	}
	t := m.table()
	ch := m.chains()
	tag := comment(epTag(bridge, veth))
	for _, p := range ports {
		match := daddrLocal()
		if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
			match = daddrIs(p.HostIP)
		}
		e := join(match, protoPort(p.Protocol, p.HostPort), dnatTo(ip, p.ContainerPort))
		c.AddRule(&nftables.Rule{Table: t, Chain: ch[chainPrerouting], Exprs: e, UserData: tag})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch[chainOutput], Exprs: e, UserData: tag})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: publish ports of %s: %w", veth, err)
	}
	return nil
}

// removePortRules unpublishes an endpoint's ports. The caller holds the host lock.
func (m *Manager) removePortRules(bridge, veth string) error {
	tag := epTag(bridge, veth)
	return m.removeRules([]string{chainPrerouting, chainOutput}, func(s string) bool { return s == tag })
}

// deleteTable removes berth's table once no network uses it. The caller
// holds the host lock.
func (m *Manager) deleteTable() {
	c, err := m.conn()
	if err != nil {
		return
	}
	c.DelTable(m.table())
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		m.Logger.Warn("netdev: delete nftables table", "table", m.Table, "err", err)
	}
}
