package filter_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/redisha/redisha/components/netns"
	"github.com/redisha/redisha/components/netns/filter"
	"github.com/redisha/redisha/components/testenv"
)

// Only this package's prefix (rhk-) and subnet (10.84.0.0/24) are used.
const table = "rhk_test"

func topology(t *testing.T) (a, b, c *testenv.Host, topo *testenv.Topology) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skips tests on network namespaces")
	}
	topo = testenv.NewTopology(t, "rhk-", netip.MustParsePrefix("10.84.0.0/24"), "a", "b", "c")
	for _, h := range topo.Hosts() {
		t.Cleanup(func() {
			tables, err := filter.Tables(h.NsPath())
			if err != nil || slices.Contains(tables, table) {
				t.Errorf("%s: tables %v (%v) after the test", h.Name, tables, err)
			}
		})
	}
	return topo.Host("a"), topo.Host("b"), topo.Host("c"), topo
}

func member(h *testenv.Host) filter.Member {
	return filter.Member{Name: h.Name, Netns: h.NsPath(), Addr: h.IP}
}

// delivered sends n datagrams from one host (nil: the host namespace) to
// another's fresh listener and counts what arrives.
func delivered(t *testing.T, from, to *testenv.Host, n int) int {
	t.Helper()
	ln, err := netns.ListenPacket(to.NsPath(), "udp4", to.IP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	path := ""
	if from != nil {
		path = from.NsPath()
	}
	var out net.Conn
	if err := netns.Do(path, func() (err error) {
		out, err = net.Dial("udp4", ln.LocalAddr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for i := 0; i < n; i++ {
		_, _ = out.Write([]byte{byte(i)})
	}
	got := 0
	buf := make([]byte, 16)
	for {
		_ = ln.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := ln.ReadFrom(buf); err != nil {
			return got
		}
		got++
	}
}

func tcp(from, to *testenv.Host) error {
	ln, err := netns.Listen(to.NsPath(), "tcp4", to.IP.String()+":0")
	if err != nil {
		return err
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	c, err := from.Dial()(ctx, "tcp4", ln.Addr().String())
	if err == nil {
		c.Close()
	}
	return err
}

func TestCutBothWaysAndHeal(t *testing.T) {
	a, b, c, _ := topology(t)
	p, err := filter.Cut(filter.Spec{A: []filter.Member{member(a)}, B: []filter.Member{member(b)}, Table: table, Chain: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := delivered(t, a, b, 5); got != 0 {
		t.Errorf("a->b: %d of 5 datagrams arrived through the partition", got)
	}
	if got := delivered(t, b, a, 5); got != 0 {
		t.Errorf("b->a: %d of 5 datagrams arrived through the partition", got)
	}
	if tcp(a, b) == nil || tcp(b, a) == nil {
		t.Error("TCP crosses the partition")
	}
	if tcp(c, a) != nil || tcp(b, c) != nil {
		t.Error("the partition a|b cut c off too")
	}
	if got := delivered(t, nil, a, 5); got != 5 {
		t.Errorf("observer->a: %d of 5 datagrams arrived", got)
	}
	if p.Members() != "a,b" {
		t.Errorf("Members() = %q", p.Members())
	}
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	if p.Dropped() < 10 {
		t.Errorf("Dropped() = %d, want at least the 10 datagrams", p.Dropped())
	}
	if err := p.Heal(); err != nil {
		t.Errorf("second heal: %v", err)
	}
	if got := delivered(t, a, b, 5); got != 5 {
		t.Errorf("after heal a->b: %d of 5", got)
	}
	if tcp(a, b) != nil || tcp(b, a) != nil {
		t.Error("TCP does not cross after heal")
	}
}

func TestCutOneWay(t *testing.T) {
	a, b, _, _ := topology(t)
	p, err := filter.Cut(filter.Spec{A: []filter.Member{member(a)}, B: []filter.Member{member(b)}, OneWay: true, Table: table, Chain: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := delivered(t, a, b, 10); got != 0 {
		t.Errorf("one-way a->b: %d of 10 datagrams a->b arrived, want 0", got)
	}
	if got := delivered(t, b, a, 10); got != 10 {
		t.Errorf("one-way a->b: %d of 10 datagrams b->a arrived, want 10", got)
	}
	// TCP needs both directions.
	if tcp(a, b) == nil || tcp(b, a) == nil {
		t.Error("one-way partition let a TCP connection through")
	}
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	if got := delivered(t, a, b, 10); got != 10 {
		t.Errorf("after heal %d of 10 datagrams a->b arrived", got)
	}
}

// Two partitions share a table; healing one leaves the other whole, and the
// table goes with the last.
func TestOverlappingCuts(t *testing.T) {
	a, b, c, _ := topology(t)
	ab, err := filter.Cut(filter.Spec{A: []filter.Member{member(a)}, B: []filter.Member{member(b)}, Table: table, Chain: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := filter.Cut(filter.Spec{A: []filter.Member{member(a)}, B: []filter.Member{member(c)}, Table: table, Chain: "p2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ab.Heal(); err != nil {
		t.Fatal(err)
	}
	if delivered(t, a, b, 3) != 3 || delivered(t, a, c, 3) != 0 {
		t.Error("healing a|b did not leave exactly a|c in place")
	}
	if tables, _ := filter.Tables(a.NsPath()); !slices.Contains(tables, table) {
		t.Errorf("a's table went while a|c still uses it: %v", tables)
	}
	if err := ac.Heal(); err != nil {
		t.Fatal(err)
	}
	if delivered(t, a, c, 3) != 3 {
		t.Error("a|c not healed")
	}
}

func TestCutRejects(t *testing.T) {
	a, _, _, _ := topology(t)
	for name, s := range map[string]filter.Spec{
		"no B":      {A: []filter.Member{member(a)}, Table: table, Chain: "x"},
		"IPv6":      {A: []filter.Member{member(a)}, B: []filter.Member{{Name: "v6", Netns: a.NsPath(), Addr: netip.MustParseAddr("fd00::1")}}, Table: table, Chain: "x"},
		"no netns":  {A: []filter.Member{member(a)}, B: []filter.Member{{Name: "none", Addr: netip.MustParseAddr("10.84.0.9")}}, Table: table, Chain: "x"},
		"bad netns": {A: []filter.Member{member(a)}, B: []filter.Member{{Name: "gone", Netns: "/nonexistent", Addr: netip.MustParseAddr("10.84.0.9")}}, Table: table, Chain: "x"},
	} {
		if _, err := filter.Cut(s); err == nil {
			t.Errorf("%s: Cut accepted it", name)
		}
	}
}

// TestMain fails the run if a namespace or link of this package remains.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		names, _ := netns.Names()
		links, _ := netlink.LinkList()
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		for _, n := range names {
			if strings.HasPrefix(n, "rhk-") {
				fmt.Fprintf(os.Stderr, "leftover after tests: %s\n", n)
				code = 1
			}
		}
	}
	os.Exit(code)
}
