package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/components/vip/vrrp"
)

// kaNode is a Debian keepalived (VRRP only, foreground, logging to its file).
type kaNode struct {
	host *testenv.Host
	view *nsView
	proc *testenv.Process
	dir  string
}

func keepalivedConfig(h *testenv.Host, version, prio int, interval string) string {
	return fmt.Sprintf(`global_defs {
  router_id ka-%s
  vrrp_version %d
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %s
  virtual_ipaddress {
    %s/24
  }
}
`, h.Name, version, prio, interval, vipIP)
}

func startKeepalived(t testing.TB, h *testenv.Host, view *nsView, conf string) *kaNode {
	t.Helper()
	testenv.RequireBinary(t, "keepalived")
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -n foreground, -l -D log details to the console, -G no syslog, -P VRRP
	// only, -R no respawn, and pid files of its own so instances do not clash.
	p := testenv.StartProcess(t, testenv.ProcessSpec{Name: "keepalived-" + h.Name, Dir: dir, Netns: h.Netns,
		Argv: []string{"keepalived", "-n", "-l", "-D", "-G", "-P", "-R", "-f", path,
			"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"),
			"-c", filepath.Join(dir, "checkers.pid")}})
	k := &kaNode{host: h, view: view, proc: p, dir: dir}
	waitFor(t, "keepalived VRRP child", 10*time.Second, func() bool { return k.vrrpPid() > 0 })
	waitFor(t, "keepalived start-up", 10*time.Second, func() bool {
		return strings.Contains(k.log(t), "Entering BACKUP STATE")
	})
	return k
}

func (k *kaNode) vrrpPid() int {
	b, err := os.ReadFile(filepath.Join(k.dir, "vrrp.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (k *kaNode) log(t testing.TB) string { return readFile(t, k.proc.LogPath()) }

// kill SIGKILLs the VRRP child (the process that sends adverts), then the
// parent, so no priority-0 advert is sent: a crash.
func (k *kaNode) kill() {
	if pid := k.vrrpPid(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	k.proc.Kill()
	os.Remove(filepath.Join(k.dir, "vrrp.pid"))
}

// keepalivedComplaints are the log lines keepalived writes about adverts it
// rejects or finds suspicious (vrrp.c's log_rate_limited_error calls).
var keepalivedComplaints = regexp.MustCompile(`(?i)invalid|mismatch|checksum|wrong|expected|too (short|long)|not present|bad|unknown|error`)

type interopCase struct {
	version   int
	kaIntv    string // keepalived advert_int
	ourIntv   string // our advert_interval
	interval  time.Duration
	mdiOurs   time.Duration // ours at priority 100
	skewOurs  time.Duration
	mdiKA50   time.Duration // keepalived at priority 50
	skewKA50  time.Duration
	kaPrioHi  int
	kaPrioLow int
}

// TestKeepalivedInterop puts redisha-vip and Debian's keepalived in one VRRP
// group (same VRID, interval and VIP) for v2 and v3: each can be master, each
// takes over when the other dies (SIGKILL and SIGTERM), each preempts the
// other, keepalived logs no complaint about our adverts, we count no bad
// packet from keepalived, and the VIP is never on both for an advert interval.
func TestKeepalivedInterop(t *testing.T) {
	needNetns(t)
	testenv.RequireBinary(t, "keepalived")
	for _, tc := range []interopCase{
		{version: 3, kaIntv: "0.3", ourIntv: "300ms", interval: 300 * time.Millisecond,
			mdiOurs: 1080 * time.Millisecond, skewOurs: 180 * time.Millisecond, // 3*30 + 156*30/256 cs
			mdiKA50: 1140 * time.Millisecond, skewKA50: 240 * time.Millisecond, // 3*30 + 206*30/256 cs
			kaPrioHi: 150, kaPrioLow: 50},
		{version: 2, kaIntv: "1", ourIntv: "1s", interval: time.Second,
			mdiOurs: 3609375 * time.Microsecond, skewOurs: 609375 * time.Microsecond, // 3 s + 156/256 s
			mdiKA50: 3804688 * time.Microsecond, skewKA50: 804688 * time.Microsecond, // 3 s + 206/256 s
			kaPrioHi: 150, kaPrioLow: 50},
	} {
		t.Run(fmt.Sprintf("v%d", tc.version), func(t *testing.T) { interop(t, tc) })
	}
}

func interop(t *testing.T, tc interopCase) {
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b", "c")
	ha, hb, hc := topo.Host("a"), topo.Host("b"), topo.Host("c")
	va, vb, vc := newView(t, ha.Netns), newView(t, hb.Netns), newView(t, hc.Netns)
	// Takeovers are timed on the wire in the new master's namespace (see
	// capture_test.go). Tolerances: 20 ms of base plus scheduling lag, capped
	// so a regression stays visible: after SIGKILL at half an advert interval
	// (a Master_Down_Interval of 4 intervals instead of 3 + Skew_Time is at
	// least interval - Skew_Time late); after SIGTERM at half the distance to
	// an ignored priority-0 advert (then the backup waits at least
	// Master_Down_Interval - interval from the priority-0 advert).
	capA, capB := captureVRRP(t, ha), captureVRRP(t, hb)
	// keepalived 2.2.7 answers ~60 ms after its Skew_Time even on an idle
	// machine (measured here); the old bound's 100 ms margin stays its base.
	const base, kaBase = 20 * time.Millisecond, 100 * time.Millisecond
	killLimit := tc.interval / 2
	termLimit := func(mdi, skew time.Duration) time.Duration { return (mdi - tc.interval - skew) / 2 }
	checkOverlap := func(m *overlapMonitor, phase string) {
		t.Helper()
		if o := m.Max(); o >= tc.interval {
			t.Errorf("%s: VIP held by both for %v, limit one advert interval %v", phase, o, tc.interval)
		} else {
			t.Logf("%s: longest double ownership %v", phase, o)
		}
	}

	// 1. keepalived (priority 150) is master, redisha-vip (100) backup.
	ka := startKeepalived(t, ha, va, keepalivedConfig(ha, tc.version, tc.kaPrioHi, tc.kaIntv))
	ours := startVIP(t, hb, vb, vipConfig(hb, tc.version, 100, tc.ourIntv))
	waitFor(t, "keepalived to become master", 10*time.Second, func() bool { return va.has(vipIP) })
	time.Sleep(2 * tc.interval)
	if s := ours.state(t); s != "BACKUP" || vb.has(vipIP) {
		t.Fatalf("redisha-vip is %s beside a keepalived master", s)
	}
	// The client talks to the VIP, so it caches keepalived's MAC for it.
	touchVIP(hc)
	if !macEqual(vc.neighMAC(vipIP), va.mac) {
		t.Fatalf("client caches %v for the VIP, want keepalived's %v", vc.neighMAC(vipIP), va.mac)
	}

	// 2. keepalived crashes: we take over within our Master_Down_Interval.
	mark, probe := capB.mark(), startSchedProbe()
	killed := time.Now()
	ka.kill()
	took := waitFor(t, "redisha-vip takeover after keepalived SIGKILL", 10*time.Second, func() bool { return vb.has(vipIP) }).Sub(killed)
	t.Logf("keepalived SIGKILL -> VIP on redisha-vip seen by the test after %v", took)
	reactionBound(t, "keepalived's last advert -> our first advert as master", capB.handover(t, mark, ha.IP, hb.IP, false),
		tc.mdiOurs, base, killLimit, probe)
	waitFor(t, "client to follow our GARP", time.Second, func() bool { return macEqual(vc.neighMAC(vipIP), vb.mac) })

	// 3. keepalived comes back with the higher priority and preempts us.
	ka.proc.Start()
	waitFor(t, "keepalived VRRP child", 10*time.Second, func() bool { return ka.vrrpPid() > 0 })
	waitFor(t, "keepalived to drop its stale VIP", 10*time.Second, func() bool { return !va.has(vipIP) })
	mon := monitorOverlap(va, vb)
	waitFor(t, "keepalived to preempt redisha-vip", 10*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	time.Sleep(2 * tc.interval)
	checkOverlap(mon, "keepalived preempts redisha-vip")
	if s := ours.state(t); s != "BACKUP" {
		t.Fatalf("redisha-vip is %s after keepalived preempted it", s)
	}

	// 4. keepalived stops gracefully (priority 0): we take over after Skew_Time.
	mon = monitorOverlap(va, vb)
	mark, probe = capB.mark(), startSchedProbe()
	termed := time.Now()
	ka.proc.Signal(syscall.SIGTERM)
	took = waitFor(t, "redisha-vip takeover after keepalived SIGTERM", 5*time.Second, func() bool { return vb.has(vipIP) }).Sub(termed)
	t.Logf("keepalived SIGTERM -> VIP on redisha-vip seen by the test after %v", took)
	reactionBound(t, "keepalived's priority-0 advert -> our first advert as master", capB.handover(t, mark, ha.IP, hb.IP, true),
		tc.skewOurs, base, termLimit(tc.mdiOurs, tc.skewOurs), probe)
	waitFor(t, "keepalived to exit", 5*time.Second, func() bool { return !ka.proc.Running() })
	checkOverlap(mon, "keepalived hands over to redisha-vip")
	kaLog1 := ka.log(t)

	// 5. keepalived (priority 50) joins as backup of our master.
	os.Remove(filepath.Join(ka.dir, "vrrp.pid"))
	ka2 := startKeepalived(t, ha, va, keepalivedConfig(ha, tc.version, tc.kaPrioLow, tc.kaIntv))
	time.Sleep(tc.mdiKA50 + tc.interval)
	if va.has(vipIP) || !strings.Contains(ka2.log(t), "Entering BACKUP STATE") || strings.Contains(ka2.log(t), "Entering MASTER STATE") {
		t.Fatalf("keepalived did not stay backup of redisha-vip:\n%s", ka2.log(t))
	}

	// 6. we crash: keepalived takes over within its Master_Down_Interval.
	mark, probe = capA.mark(), startSchedProbe()
	killed = time.Now()
	ours.proc.Kill()
	took = waitFor(t, "keepalived takeover after redisha-vip SIGKILL", 10*time.Second, func() bool { return va.has(vipIP) }).Sub(killed)
	t.Logf("redisha-vip SIGKILL -> VIP on keepalived seen by the test after %v", took)
	reactionBound(t, "our last advert -> keepalived's first advert as master", capA.handover(t, mark, hb.IP, ha.IP, false),
		tc.mdiKA50, kaBase, killLimit, probe)
	waitFor(t, "client to follow keepalived's GARP", time.Second, func() bool { return macEqual(vc.neighMAC(vipIP), va.mac) })

	// 7. we restart (stale VIP removed first) and preempt keepalived.
	ours.proc.Start()
	waitFor(t, "redisha-vip to drop its stale VIP", 5*time.Second, func() bool { return !vb.has(vipIP) })
	mon = monitorOverlap(va, vb)
	waitFor(t, "redisha-vip to preempt keepalived", 10*time.Second, func() bool { return vb.has(vipIP) && !va.has(vipIP) })
	time.Sleep(2 * tc.interval)
	checkOverlap(mon, "redisha-vip preempts keepalived")
	if who, err := whoAnswers(hc); err != nil || who != "b" {
		t.Fatalf("VIP answered by %q (%v), want redisha-vip on b", who, err)
	}

	// 8. we stop gracefully: keepalived takes over after its Skew_Time.
	s, err := ours.status()
	if err != nil {
		t.Fatal(err)
	}
	mon = monitorOverlap(va, vb)
	mark, probe = capA.mark(), startSchedProbe()
	termed = time.Now()
	ours.proc.Signal(syscall.SIGTERM)
	took = waitFor(t, "keepalived takeover after redisha-vip SIGTERM", 5*time.Second, func() bool { return va.has(vipIP) }).Sub(termed)
	t.Logf("redisha-vip SIGTERM -> VIP on keepalived seen by the test after %v", took)
	reactionBound(t, "our priority-0 advert -> keepalived's first advert as master", capA.handover(t, mark, hb.IP, ha.IP, true),
		tc.skewKA50, kaBase, termLimit(tc.mdiKA50, tc.skewKA50), probe)
	waitFor(t, "redisha-vip to exit", 5*time.Second, func() bool { return !ours.proc.Running() })
	checkOverlap(mon, "redisha-vip hands over to keepalived")

	// Neither side complained about the other's packets.
	if bad := badPackets(s); len(bad) > 0 || s.AdvertsReceived == 0 {
		t.Errorf("redisha-vip dropped keepalived adverts: %v (received %d)", bad, s.AdvertsReceived)
	}
	for i, l := range []string{kaLog1, ka2.log(t)} {
		for _, line := range strings.Split(l, "\n") {
			if keepalivedComplaints.MatchString(line) {
				t.Errorf("keepalived run %d complains: %s", i+1, line)
			} else if strings.Contains(line, hb.IP.String()) {
				t.Logf("keepalived run %d about us: %s", i+1, line)
			}
		}
		if !strings.Contains(l, "VI_1") {
			t.Errorf("keepalived run %d log looks empty:\n%s", i+1, l)
		}
	}
}

// touchVIP opens (and drops) a TCP connection from client to the VIP, which
// resolves and caches the VIP's MAC; a refusal is an answer too.
func touchVIP(client *testenv.Host) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := client.Dial()(ctx, "tcp", net.JoinHostPort(vipIP.String(), "9")); err == nil {
		c.Close()
	}
}

// TestKeepalivedRecipeInterop replaces one keepalived of the classic recipe
// (/work/shared/recipe: vrrp_version 2 by default, advert_int 1 by default,
// state MASTER, priority 101 vs 100, a /32 VIP, chk_haproxy with weight 2)
// with redisha-vip tracking the same kind of check: the node whose proxy
// check fails loses the VIP to the other, and gets it back when it recovers.
func TestKeepalivedRecipeInterop(t *testing.T) {
	needNetns(t)
	testenv.RequireBinary(t, "keepalived")
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b")
	ha, hb := topo.Host("a"), topo.Host("b")
	va, vb := newView(t, ha.Netns), newView(t, hb.Netns)
	dir := t.TempDir()
	kaUp, ourUp := filepath.Join(dir, "ka-haproxy-up"), filepath.Join(dir, "our-haproxy-up")
	for _, f := range []string{kaUp, ourUp} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ka := startKeepalived(t, ha, va, fmt.Sprintf(`global_defs {
  script_user root
}
vrrp_script chk_haproxy {
  script "/usr/bin/test -e %s"
  interval 1
  weight 2
}
vrrp_instance VI_1 {
  interface eth0
  state MASTER
  virtual_router_id 51
  priority 101
  virtual_ipaddress {
    %s
  }
  track_script {
    chk_haproxy
  }
}
`, kaUp, vipIP))
	waitFor(t, "keepalived (state MASTER) to hold the VIP", 10*time.Second, func() bool { return va.has(vipIP) })
	ours := startVIP(t, hb, vb, fmt.Sprintf(`name: b
interface: eth0
vrid: 51
version: 2
priority: 100
virtual_addresses: [%s]
status: {listen: "0.0.0.0:%d"}
track:
  - {name: chk_haproxy, command: [test, -e, %s], interval: 1s, weight: 2}
`, vipIP, statusPort, ourUp))
	time.Sleep(2 * time.Second)
	if s, _ := ours.status(); s.State != "BACKUP" || s.Priority != 102 || vb.has(vipIP) {
		t.Fatalf("redisha-vip beside the recipe's master: %+v", s)
	}

	mon := monitorOverlap(va, vb)
	os.Remove(kaUp) // keepalived: 101 < our 102
	waitFor(t, "redisha-vip to take the VIP from keepalived whose check failed", 10*time.Second,
		func() bool { return vb.has(vipIP) && !va.has(vipIP) })
	os.WriteFile(kaUp, nil, 0o644) // keepalived: 103 > 102
	waitFor(t, "keepalived to take the VIP back", 10*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	if o := mon.Max(); o >= time.Second {
		t.Errorf("VIP on both for %v", o)
	}
	s, err := ours.status()
	if err != nil {
		t.Fatal(err)
	}
	if bad := badPackets(s); len(bad) > 0 {
		t.Errorf("redisha-vip dropped keepalived adverts: %v", bad)
	}
	for _, line := range strings.Split(ka.log(t), "\n") {
		if keepalivedComplaints.MatchString(line) {
			t.Errorf("keepalived complains: %s", line)
		}
	}
}

// TestKeepalivedPasswordInterop: VRRPv2 simple-password authentication with
// Debian's keepalived (authentication { auth_type PASS auth_pass secret }).
// keepalived's adverts carry exactly the bytes we would send (type 1, the
// password zero-padded to 8); we accept them as backup and keepalived
// accepts ours as backup (both directions, no complaint, no drop); a
// keepalived with another password is dropped and counted (password) by us
// and complains "invalid passwd" about us, so neither yields to the other.
func TestKeepalivedPasswordInterop(t *testing.T) {
	needNetns(t)
	testenv.RequireBinary(t, "keepalived")
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b", "c")
	ha, hb, hc := topo.Host("a"), topo.Host("b"), topo.Host("c")
	va, vb, vc := newView(t, ha.Netns), newView(t, hb.Netns), newView(t, hc.Netns)
	capB := captureVRRP(t, hb)
	withAuth := func(conf, pw string) string {
		return strings.Replace(conf, "  virtual_ipaddress {",
			"  authentication {\n    auth_type PASS\n    auth_pass "+pw+"\n  }\n  virtual_ipaddress {", 1)
	}
	ourAuth := "authentication: {type: pass, password: secret}\n"

	// keepalived (150) master, we (100) its backup: we accept its adverts.
	ka := startKeepalived(t, ha, va, withAuth(keepalivedConfig(ha, 2, 150, "1"), "secret"))
	ours := startVIP(t, hb, vb, vipConfig(hb, 2, 100, "1s")+ourAuth)
	waitFor(t, "keepalived master", 10*time.Second, func() bool { return va.has(vipIP) })
	waitFor(t, "three keepalived adverts accepted", 10*time.Second, func() bool {
		s, err := ours.status()
		return err == nil && s.AdvertsReceived >= 3
	})
	if s, _ := ours.status(); s.State != "BACKUP" || vb.has(vipIP) || len(badPackets(s)) > 0 {
		t.Fatalf("redisha-vip beside an authenticating keepalived master: %+v", s)
	}
	var kaAdvert *advertSeen
	for _, a := range capB.adverts() {
		if a.Src == ha.IP && a.Priority == 150 {
			kaAdvert = &a
			break
		}
	}
	if kaAdvert == nil || kaAdvert.Auth != vrrp.PasswordAuth("secret") {
		t.Fatalf("keepalived's advert on the wire: %+v, want auth %+v", kaAdvert, vrrp.PasswordAuth("secret"))
	}
	want, err := vrrp.Encode(vrrp.Advert{Version: 2, VRID: 51, Priority: 150, Interval: 100, Addresses: []netip.Addr{vipIP},
		Auth: vrrp.PasswordAuth("secret")}, ha.IP, vrrp.MulticastGroup, vrrp.ChecksumMessageOnly)
	if err != nil || !bytes.Equal(want, kaAdvert.Payload) {
		t.Fatalf("keepalived sent % x, we encode % x (%v)", kaAdvert.Payload, want, err)
	}

	// keepalived leaves; we become master; keepalived (50) returns as our
	// backup and stays backup: it accepts our password.
	ka.proc.Stop()
	waitFor(t, "redisha-vip master", 10*time.Second, func() bool { return vb.has(vipIP) })
	os.Remove(filepath.Join(ka.dir, "vrrp.pid"))
	ka2 := startKeepalived(t, ha, va, withAuth(keepalivedConfig(ha, 2, 50, "1"), "secret"))
	time.Sleep(5 * time.Second) // keepalived's Master_Down_Interval is 3.8 s
	if va.has(vipIP) || strings.Contains(ka2.log(t), "Entering MASTER STATE") {
		t.Fatalf("keepalived did not accept our authenticated adverts:\n%s", ka2.log(t))
	}
	for _, line := range strings.Split(ka2.log(t), "\n") {
		if keepalivedComplaints.MatchString(line) {
			t.Errorf("keepalived complains: %s", line)
		}
	}

	// A keepalived with another password (priority 250): each drops the
	// other's adverts, so it does not preempt us and we do not yield.
	kaWrong := startKeepalived(t, hc, vc, withAuth(keepalivedConfig(hc, 2, 250, "1"), "secreT"))
	waitFor(t, "keepalived with the wrong password to complain about us", 10*time.Second, func() bool {
		return strings.Contains(kaWrong.log(t), "invalid passwd")
	})
	// keepalived 2.2.7 restarts a master's advert timer on every packet it
	// reads, valid or not (vrrp_scheduler.c, vrrp_init_instance_sands after
	// each read), so while our adverts (same interval) keep arriving it
	// sends only its first advert as master: one drop to count.
	waitFor(t, "our drop of its advert (password)", 10*time.Second, func() bool {
		s, err := ours.status()
		return err == nil && s.BadPackets["password"] >= 1
	})
	if s, _ := ours.status(); s.State != "MASTER" || s.Priority != 100 {
		t.Fatalf("redisha-vip yielded to adverts with a wrong password: %+v", s)
	}
	t.Logf("keepalived about our adverts: %s", lastLine(kaWrong.log(t), "invalid passwd"))
	if log := readFile(t, ours.proc.LogPath()); !strings.Contains(log, "reason=password") {
		t.Errorf("the password drop was not logged:\n%s", log)
	}
}

func lastLine(s, substr string) string {
	out := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = l
		}
	}
	return out
}
