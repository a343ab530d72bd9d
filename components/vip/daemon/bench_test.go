package daemon_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// pairNode abstracts one member of a VRRP pair for the benchmark.
type pairNode interface {
	crash()     // SIGKILL, no goodbye
	terminate() // SIGTERM, priority-0 handover
	restart()
}

type kaPairNode struct{ *kaNode }

func (k kaPairNode) crash()     { k.kill() }
func (k kaPairNode) terminate() { k.proc.Signal(syscall.SIGTERM) }
func (k kaPairNode) restart() {
	k.proc.Stop()
	os.Remove(k.dir + "/vrrp.pid")
	k.proc.Start()
}

type vipPairNode struct{ *vipNode }

func (v vipPairNode) crash()     { v.proc.Kill() }
func (v vipPairNode) terminate() { v.proc.Signal(syscall.SIGTERM) }
func (v vipPairNode) restart()   { v.proc.Stop(); v.proc.Start() }

type takeovers struct{ kill, term []time.Duration }

// measurePair measures rounds of SIGKILL and SIGTERM takeovers from master a
// (higher priority) to backup b; a is restarted and preempts back each time.
func measurePair(t *testing.T, a pairNode, va, vb *nsView, rounds int, settle time.Duration) takeovers {
	var r takeovers
	stable := func() {
		waitFor(t, "a to be master", 15*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
		time.Sleep(settle)
	}
	for i := 0; i < rounds; i++ {
		for _, graceful := range []bool{false, true} {
			stable()
			// Spread the signal over the advert cycle.
			time.Sleep(time.Duration(i) * settle / time.Duration(rounds))
			start := time.Now()
			if graceful {
				a.terminate()
			} else {
				a.crash()
			}
			took := waitFor(t, "b to take over", 15*time.Second, func() bool { return vb.has(vipIP) }).Sub(start)
			if graceful {
				r.term = append(r.term, took)
			} else {
				r.kill = append(r.kill, took)
			}
			a.restart()
		}
	}
	return r
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestBenchTakeover is `make bench-vip`: VIP takeover after SIGKILL and
// SIGTERM of the master for a keepalived pair and a redisha-vip pair at the
// same VRRPv3 advert interval and priorities, in one run, with the ratio.
// It runs only when REDISHA_BENCH_VIP=1 (it takes about a minute).
func TestBenchTakeover(t *testing.T) {
	if os.Getenv("REDISHA_BENCH_VIP") != "1" {
		t.Skip("benchmark: run with REDISHA_BENCH_VIP=1 (make bench-vip)")
	}
	needNetns(t)
	testenv.RequireBinary(t, "keepalived")
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("REDISHA_BENCH_VIP_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	const cs = 50 // advert interval, centiseconds
	interval := time.Duration(cs) * 10 * time.Millisecond
	// Backup priority 100: Skew_Time = 156*50/256 = 30 cs, Master_Down_Interval = 180 cs.
	mdi, skew := 1800*time.Millisecond, 300*time.Millisecond

	topo := testenv.NewTopology(t, prefix, subnet, "a", "b")
	ha, hb := topo.Host("a"), topo.Host("b")
	va, vb := newView(t, ha.Netns), newView(t, hb.Netns)

	kaA := startKeepalived(t, ha, va, keepalivedConfig(ha, 3, 150, "0.5"))
	kaB := startKeepalived(t, hb, vb, keepalivedConfig(hb, 3, 100, "0.5"))
	ka := measurePair(t, kaPairNode{kaA}, va, vb, rounds, 2*interval)
	kaA.proc.Kill()
	kaB.proc.Kill()
	waitFor(t, "VIPs released", 5*time.Second, func() bool { return !va.has(vipIP) && !vb.has(vipIP) })

	ourA := startVIP(t, ha, va, vipConfig(ha, 3, 150, interval.String()))
	ourB := startVIP(t, hb, vb, vipConfig(hb, 3, 100, interval.String()))
	ours := measurePair(t, vipPairNode{ourA}, va, vb, rounds, 2*interval)
	ourA.proc.Stop()
	ourB.proc.Stop()

	fmt.Printf("\nVIP takeover, VRRPv3, advert interval %v, master priority 150, backup 100, %d rounds each\n", interval, rounds)
	fmt.Printf("(bounds: SIGKILL <= Master_Down_Interval %v, SIGTERM <= Skew_Time %v)\n\n", mdi, skew)
	fmt.Printf("| event   | keepalived median | keepalived max | redisha-vip median | redisha-vip max | ratio (median, redisha-vip/keepalived) |\n")
	fmt.Printf("|---------|------------------:|---------------:|-------------------:|----------------:|------:|\n")
	row := func(name string, k, o []time.Duration) {
		fmt.Printf("| %-7s | %17v | %14v | %18v | %15v | %5.2f |\n", name,
			median(k).Round(time.Millisecond), slices.Max(k).Round(time.Millisecond),
			median(o).Round(time.Millisecond), slices.Max(o).Round(time.Millisecond),
			float64(median(o))/float64(median(k)))
	}
	row("SIGKILL", ka.kill, ours.kill)
	row("SIGTERM", ka.term, ours.term)
	fmt.Println()
	if slices.Max(ours.kill) > mdi+100*time.Millisecond || slices.Max(ours.term) > skew+100*time.Millisecond {
		t.Errorf("redisha-vip exceeded its bounds: kill %v term %v", ours.kill, ours.term)
	}
}
