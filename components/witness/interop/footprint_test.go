package interop_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// procStat returns RSS (KiB) and user+system CPU time (clock ticks) of pid.
func procStat(tb testing.TB, pid int) (rssKiB, anonKiB, fileKiB int64, ticks int64) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rssKiB = v
		case "RssAnon:":
			anonKiB = v
		case "RssFile:":
			fileKiB = v
		}
	}
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(s)[strings.LastIndexByte(string(s), ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64) // utime: field 14 overall
	k, _ := strconv.ParseInt(f[12], 10, 64) // stime: field 15
	return rssKiB, anonKiB, fileKiB, u + k
}

// BenchmarkFootprint compares redisha-witness with redis-sentinel in the same
// role: both are the third observer of one master + replica, next to two
// other real sentinels, all monitoring each other. It prints RSS and idle CPU
// side by side. Run: make footprint-witness (FOOTPRINT_SECONDS to change the window).
func BenchmarkFootprint(b *testing.B) {
	testenv.RequireBinary(b, "redis-server", "redis-sentinel")
	window := 60 * time.Second
	if v, err := strconv.Atoi(os.Getenv("FOOTPRINT_SECONDS")); err == nil && v > 0 {
		window = time.Duration(v) * time.Second
	}
	master := testenv.StartRedis(b, testenv.RedisOptions{})
	testenv.StartRedis(b, testenv.RedisOptions{ReplicaOf: master.Addr()})
	so := testenv.SentinelOptions{MasterAddr: master.Addr(), DownAfterMs: downAfterMs, FailoverTimeout: failoverTimeout}
	s1, s2, s3 := testenv.StartSentinel(b, so), testenv.StartSentinel(b, so), testenv.StartSentinel(b, so)
	w := startWitnessTB(b, witnessOpts{MasterAddr: master.Addr(), LogLevel: "info"})
	time.Sleep(10 * time.Second) // discovery settles
	_ = s1
	_ = s2
	procs := []*testenv.Process{w, s3}
	before := map[*testenv.Process]int64{}
	for _, p := range procs {
		_, _, _, t := procStat(b, p.Pid())
		before[p] = t
	}
	b.ResetTimer()
	time.Sleep(window)
	b.StopTimer()
	const hz = 100 // USER_HZ on Linux
	fmt.Printf("\nfootprint over %v idle, third observer of 1 master + 1 replica + 3 peer sentinels\n", window)
	fmt.Printf("%-16s %9s %10s %10s %8s %11s\n", "process", "RSS MiB", "anon MiB", "file MiB", "CPU %", "CPU ms/min")
	var rssRatio, cpuRatio [2]float64
	for i, p := range procs {
		r, anon, file, t := procStat(b, p.Pid())
		cpuSec := float64(t-before[p]) / hz
		pct := 100 * cpuSec / window.Seconds()
		name := "redisha-witness"
		if i == 1 {
			name = "redis-sentinel"
		}
		fmt.Printf("%-16s %9.1f %10.1f %10.1f %8.3f %11.0f\n", name, float64(r)/1024, float64(anon)/1024, float64(file)/1024,
			pct, 1000*cpuSec*60/window.Seconds())
		rssRatio[i], cpuRatio[i] = float64(anon), cpuSec
		b.ReportMetric(float64(r)/1024, name+"-RSS-MiB")
		b.ReportMetric(pct, name+"-CPU-%")
	}
	fmt.Printf("ratio witness/sentinel: anonymous (private) RSS %.2f, CPU %.2f\n", rssRatio[0]/rssRatio[1], cpuRatio[0]/max(cpuRatio[1], 0.001))
}
