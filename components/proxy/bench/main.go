// Command bench compares redisha-proxy with HAProxy (the recipe's tcp-check
// configuration) and with redis directly, using redis-benchmark, in three
// placements (pinned: each proxy on its own core with one thread; shared:
// nothing pinned, default threads; two: the proxy on both cores with two
// threads), in alternating rounds; then measures the memory each proxy
// needs per idle client connection. With -baseline, a second redisha-proxy
// binary runs as contender "baseline" in the same rounds (A/B of two
// builds); its rows' redisha/HAProxy columns are then baseline/HAProxy.
// With -control (the default), a second HAProxy identical to the first runs
// as contender "haproxy-b" in the same rounds: its ratios to the first are
// what this machine's noise alone makes of two equal proxies (A/A), the band
// against which every redisha/HAProxy ratio is read.
//
//	go run ./components/proxy/bench -proxy bin/redisha-proxy -rounds 5
package main

import (
	"bufio"
	"encoding/csv"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	proxyBin  = flag.String("proxy", "bin/redisha-proxy", "redisha-proxy binary")
	rounds    = flag.Int("rounds", 5, "alternating rounds")
	requests  = flag.Int("n", 200000, "requests per redis-benchmark run without pipelining")
	requestsP = flag.Int("np", 1000000, "requests per redis-benchmark run with -P 16")
	clients   = flag.Int("c", 50, "redis-benchmark clients")
	idleConns = flag.Int("idle", 9500, "idle client connections for the memory measurement")
	serverCPU = flag.String("server-cpu", "0", "pinned placement: taskset CPU list for redis-server and redis-benchmark")
	proxyCPU  = flag.String("proxy-cpu", "1", "pinned placement: taskset CPU list for the proxy under test (both proxies)")
	places    = flag.String("placements", "pinned,shared,two", "placements to measure, comma-separated")
	markdown  = flag.String("markdown", "", "also write the result tables to this markdown file")
	only      = flag.String("cells", "set/1,get/1,set/16,get/16", "cells to run: test/pipeline, comma-separated")
	durable   = flag.Bool("durable", true, "also compare the durable mode (a master with one replica, nothing pinned)")
	durTO     = flag.Int("durable-timeout-ms", 500, "durable mode: WAIT's timeout (ms)")
	latN      = flag.Int("latency-n", 20000, "durable mode: writes per single-client latency run")
	control   = flag.Bool("control", true, "also run a second, identical HAProxy (contender \"haproxy-b\") in the same rounds: its ratios to the first are the machine's noise band (A/A)")
	probe     = flag.Bool("wake-probe", true, "first measure what waking a sleeping core costs the waking core (between the pinned placement's CPUs)")
	baseline  = flag.String("baseline", "", "another redisha-proxy binary (e.g. an older build) measured as contender \"baseline\" in the same alternating rounds, with redisha/baseline ratios (A/B)")
)

type contender struct {
	name string
	addr string
	pid  int
}

// result of one redis-benchmark run; cpu is the contender's own CPU time per
// request (µs), which busy neighbours on a shared machine disturb far less
// than throughput. srv and bmk are redis-server's and redis-benchmark's CPU
// per request in the same run, tot the three together (for direct, redis
// and the benchmark): a proxy that costs little itself can still make the
// processes on either side of it work harder per request (fewer events per
// wake-up), and where they share a saturated core that is the throughput.
// slp is how often the contender went to sleep per request (voluntary
// context switches of all its threads): each sleep is a wake-up that the
// core which delivers the next request pays for (wakeProbe).
type result struct{ rps, p50, p99, cpu, srv, bmk, tot, slp float64 }

// Indices of result's fields for field and ratios.
const (
	fRPS = iota
	fP50
	fP99
	fCPU
	fSrv
	fBmk
	fTot
	fSlp
)

// run measures one redis-benchmark run against c: c's CPU, redis-server's
// (serverPid) and redis-benchmark's per request.
func run(c contender, serverPid int, cpus string, cell cellSpec) result {
	n := *requests
	if cell.pipeline > 1 {
		n = *requestsP
	}
	before, srvBefore, slpBefore := cpuTime(c.pid), cpuTime(serverPid), sleeps(c.pid)
	res := benchmark(c.addr, cpus, cell.test, cell.pipeline)
	res.cpu = (cpuTime(c.pid) - before) * 1e6 / float64(n)
	res.slp = float64(sleeps(c.pid)-slpBefore) / float64(n)
	res.srv = (cpuTime(serverPid) - srvBefore) * 1e6 / float64(n)
	res.bmk /= float64(n)
	res.tot = res.srv + res.bmk
	if c.pid != serverPid {
		res.tot += res.cpu
	}
	return res
}

// placement is where the processes run and how many threads the proxies use.
type placement struct {
	name, desc string
	serverCPU  string // taskset list for redis-server and redis-benchmark ("" = not pinned)
	proxyCPU   string // taskset list for both proxies ("" = not pinned)
	haThreads  int    // HAProxy nbthread (0 = its default, one per CPU)
	goMaxProcs int    // GOMAXPROCS for redisha-proxy (0 = Go's default)
}

func placements() []placement {
	all := map[string]placement{
		"pinned": {"pinned", fmt.Sprintf("redis-server and redis-benchmark on CPU %s, each proxy on CPU %s, HAProxy nbthread 1, GOMAXPROCS=1", *serverCPU, *proxyCPU),
			*serverCPU, *proxyCPU, 1, 1},
		"shared": {"shared", "nothing pinned, default threads (HAProxy one per CPU, redisha-proxy its default threads: 1), all processes on the same cores", "", "", 0, 0},
		"two":    {"two", "the proxy on both cores (HAProxy nbthread 2, GOMAXPROCS=2), redis-server and redis-benchmark not pinned", "", "0-1", 2, 2},
	}
	var out []placement
	for _, n := range strings.Split(*places, ",") {
		if n == "none" || n == "" {
			continue
		}
		pl, ok := all[strings.TrimSpace(n)]
		if !ok {
			die("unknown placement %q (pinned, shared, two)", n)
		}
		out = append(out, pl)
	}
	return out
}

type cellSpec struct {
	test     string
	pipeline int
}

func main() {
	flag.Parse()
	for _, bin := range []string{"redis-server", "redis-benchmark", "haproxy", "taskset", *proxyBin} {
		if _, err := exec.LookPath(bin); err != nil {
			die("missing %s: %v", bin, err)
		}
	}
	limit := raiseNoFile()
	if uint64(2**idleConns+1000) > limit {
		// a proxy holds two sockets per client connection
		n := int(limit-1000) / 2
		fmt.Printf("open-files limit is %d (cannot raise it here): measuring %d idle connections instead of %d\n", limit, n, *idleConns)
		*idleConns = n
	}
	var cells []cellSpec
	for _, c := range strings.Split(*only, ",") {
		test, pl, ok := strings.Cut(strings.TrimSpace(c), "/")
		n, err := strconv.Atoi(pl)
		if !ok || err != nil || n < 1 {
			die("bad -cells entry %q (want test/pipeline, e.g. set/16)", c)
		}
		cells = append(cells, cellSpec{test, n})
	}
	var md strings.Builder
	fmt.Fprintf(&md, "redis-benchmark -c %d -n %d (-P 1) / -n %d (-P 16), %d alternating rounds per placement; medians, ratios per round as median [min..max]\n",
		*clients, *requests, *requestsP, *rounds)
	if *probe {
		md.WriteString("\n" + wakeLine())
	}
	for i, pl := range placements() {
		out := runPlacement(pl, cells, limit, i == 0 && *idleConns > 0)
		fmt.Print("\n" + out)
		md.WriteString("\n" + out)
	}
	if *durable {
		out := runDurable(cells, limit)
		fmt.Print("\n" + out)
		md.WriteString("\n" + out)
	}
	if *markdown != "" {
		os.WriteFile(*markdown, []byte(md.String()), 0o644)
	}
}

// wakeLine runs wakeProbe between the pinned placement's two cores and
// says what it found, as a markdown paragraph.
func wakeLine() string {
	w, errW := firstCPU(*serverCPU)
	r, errR := firstCPU(*proxyCPU)
	if errW != nil || errR != nil || w == r {
		return fmt.Sprintf("Wake-up probe skipped: -server-cpu %q and -proxy-cpu %q are not two different CPUs.\n", *serverCPU, *proxyCPU)
	}
	asleep, polling, err := wakeProbe(w, r)
	if err != nil {
		return fmt.Sprintf("Wake-up probe failed: %v\n", err)
	}
	line := fmt.Sprintf("Wake-up probe: a 14-byte write on CPU %d to a loopback socket costs the writing thread %.2f µs when the reader on CPU %d sleeps in epoll_wait "+
		"(the write must wake it), against %.2f µs when the reader polls: each sleep of a proxy costs the core that wakes it about %.2f µs (medians of 3 trials of 20,000 writes).\n",
		w, float64(asleep)/1e3, r, float64(polling)/1e3, float64(asleep-polling)/1e3)
	fmt.Print(line)
	return line
}

// runPlacement starts redis, HAProxy and redisha-proxy as the placement
// says, runs the rounds and returns the markdown tables (and, with memory,
// the idle-connection table).
func runPlacement(pl placement, cells []cellSpec, limit uint64, memory bool) string {
	dir, _ := os.MkdirTemp("", "redisha-bench-")
	defer os.RemoveAll(dir)

	redisPort := freePort()
	redis := start("redis", pl.serverCPU, nil, "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--maxclients", "30000", "--tcp-backlog", "4096", "--dir", dir)
	defer stop(redis)
	redisAddr := fmt.Sprintf("127.0.0.1:%d", redisPort)
	waitPing(redisAddr)

	var env []string
	if pl.goMaxProcs > 0 {
		env = []string{fmt.Sprintf("GOMAXPROCS=%d", pl.goMaxProcs)}
	}
	cs := []contender{{"direct", redisAddr, redis.Process.Pid}}
	var stops []*exec.Cmd
	add := func(c contender, cmd *exec.Cmd) { cs = append(cs, c); stops = append(stops, cmd) }
	defer func() {
		for _, cmd := range stops {
			stop(cmd)
		}
	}()
	add(startHAProxy("haproxy", dir, pl.proxyCPU, pl.haThreads, limit, redisAddr))
	add(startRedisha("redisha", *proxyBin, pl.proxyCPU, env, redisAddr))
	if *control {
		add(startHAProxy("haproxy-b", dir, pl.proxyCPU, pl.haThreads, limit, redisAddr))
	}
	if *baseline != "" {
		add(startRedisha("baseline", *baseline, pl.proxyCPU, env, redisAddr))
	}
	for _, c := range cs {
		waitPing(c.addr)
	}
	// results[cell][contender] = one result per round
	results := make([]map[string][]result, len(cells))
	for i := range results {
		results[i] = map[string][]result{}
	}
	fmt.Printf("placement %s: %s; %d rounds\n", pl.name, pl.desc, *rounds)
	for r := 0; r < *rounds; r++ {
		for ci, cell := range cells {
			for _, c := range runOrder(cs, r+ci) {
				results[ci][c.name] = append(results[ci][c.name], run(c, redis.Process.Pid, pl.serverCPU, cell))
			}
		}
		fmt.Printf("  round %d/%d done\n", r+1, *rounds)
	}

	var out strings.Builder
	fmt.Fprintf(&out, "### Placement: %s\n\n%s.\n\n", pl.name, pl.desc)
	targets(&out, pl, cells, results)
	fmt.Fprintf(&out, "| test | pipeline | contender | req/s median [min..max] | p50 ms | p99 ms | CPU µs/req median [min..max] | redisha/HAProxy req/s | redisha/HAProxy p99 | redisha/HAProxy CPU per req |\n")
	fmt.Fprintf(&out, "|---|---|---|---|---|---|---|---|---|---|\n")
	contenderRows(&out, cells, cs, results, func(rs []result) []string {
		return []string{spread(field(rs, fRPS), "%.0f"), fmt.Sprintf("%.3f", median(field(rs, fP50))),
			fmt.Sprintf("%.3f", median(field(rs, fP99))), spread(field(rs, fCPU), "%.2f")}
	}, fRPS, fP99, fCPU)
	fmt.Fprintf(&out, "\nThe same runs: CPU µs per request of redis-server and of redis-benchmark, and of all three processes (for direct: the two). "+
		"Where they share a saturated core (pinned: CPU %s), what the proxy makes them spend per request is the throughput. "+
		"Sleeps: the contender's voluntary context switches per request, all threads (for direct: redis-server's); each one is a wake-up the delivering core pays for.\n\n", *serverCPU)
	fmt.Fprintf(&out, "| test | pipeline | contender | redis-server µs/req median [min..max] | redis-benchmark µs/req median [min..max] | all three µs/req median [min..max] | contender sleeps/req median [min..max] | redisha/HAProxy redis-server | redisha/HAProxy redis-benchmark | redisha/HAProxy all three | redisha/HAProxy sleeps |\n")
	fmt.Fprintf(&out, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	contenderRows(&out, cells, cs, results, func(rs []result) []string {
		return []string{spread(field(rs, fSrv), "%.2f"), spread(field(rs, fBmk), "%.2f"), spread(field(rs, fTot), "%.2f"), spread(field(rs, fSlp), "%.3f")}
	}, fSrv, fBmk, fTot, fSlp)
	if *baseline != "" {
		fmt.Fprintf(&out, "\nA/B: redisha (%s) / baseline (%s), per round, median [min..max]:\n\n", *proxyBin, *baseline)
		fmt.Fprintf(&out, "| test | pipeline | req/s | p99 | proxy CPU µs/req | redis-server CPU µs/req | redis-benchmark CPU µs/req | all three CPU µs/req | proxy sleeps/req |\n")
		fmt.Fprintf(&out, "|---|---|---|---|---|---|---|---|---|\n")
		for ci, cell := range cells {
			e := ratioCols(results[ci]["redisha"], results[ci]["baseline"], fRPS, fP99, fCPU, fSrv, fBmk, fTot, fSlp)
			fmt.Fprintf(&out, "| %s | %d | %s |\n", cell.test, cell.pipeline, strings.Join(e, " | "))
		}
	}
	if !memory {
		return out.String()
	}
	fmt.Fprintf(&out, "\nMemory for %d idle client connections (each sent one PING), placement %s:\n\n", *idleConns, pl.name)
	fmt.Fprintf(&out, "| contender | RSS before MiB | RSS with idle conns MiB | per connection KiB |\n|---|---|---|---|\n")
	for _, c := range cs[1:] {
		if c.name == "haproxy-b" {
			continue // the same program as haproxy
		}
		before, after, err := idleMemory(c)
		if err != nil {
			fmt.Fprintf(&out, "| %s | %.1f | failed: %v | |\n", c.name, before/1024, err)
			continue
		}
		fmt.Fprintf(&out, "| %s | %.1f | %.1f | %.2f |\n", c.name, before/1024, after/1024, (after-before)/float64(*idleConns))
	}
	return out.String()
}

// targets writes issue 12's targets for one placement, one row per cell:
// redisha/HAProxy medians (per-round ratios) of throughput, p99 and CPU per
// request, each with the A/A band (haproxy-b/HAProxy, min..max over the
// rounds) when the control ran, and whether the median meets the target.
// Throughput has a target (at least 1.0) in the pinned and shared
// placements only.
func targets(out *strings.Builder, pl placement, cells []cellSpec, results []map[string][]result) {
	_, aa := results[0]["haproxy-b"]
	fmt.Fprintf(out, "Against issue 12's targets: redisha/HAProxy per-round ratios, median")
	if aa {
		fmt.Fprintf(out, " (A/A: the same ratio for a second, identical HAProxy, min..max over the rounds)")
	}
	fmt.Fprintf(out, ".\n\n| test | pipeline | req/s (target ≥ 1.0 pinned, shared) | p99 (target ≤ 1.1) | CPU per request (target ≤ 1.0) |\n|---|---|---|---|---|\n")
	for ci, cell := range cells {
		var col []string
		for _, t := range []struct {
			field int
			ok    func(float64) bool
		}{
			{fRPS, func(v float64) bool { return v >= 1.0 }},
			{fP99, func(v float64) bool { return v <= 1.1 }},
			{fCPU, func(v float64) bool { return v <= 1.0 }},
		} {
			// Judged at the precision shown, so a mark never contradicts
			// its number (1.1004 reads 1.100 and meets "at most 1.1").
			m := math.Round(median(ratios(results[ci]["redisha"], results[ci]["haproxy"], t.field))*1000) / 1000
			mark := " ✗"
			if t.ok(m) {
				mark = " ✓"
			}
			if t.field == fRPS && pl.name != "pinned" && pl.name != "shared" {
				mark = ""
			}
			c := fmt.Sprintf("%.3f%s", m, mark)
			if aa {
				band := ratios(results[ci]["haproxy-b"], results[ci]["haproxy"], t.field)
				c += fmt.Sprintf(" (A/A %.3f..%.3f)", minOf(band), maxOf(band))
			}
			col = append(col, c)
		}
		fmt.Fprintf(out, "| %s | %d | %s |\n", cell.test, cell.pipeline, strings.Join(col, " | "))
	}
	fmt.Fprintf(out, "\n")
	if aa {
		fmt.Fprintf(out, "Rows haproxy-b: a second HAProxy, identical to the first; their ratio columns are haproxy-b/HAProxy (A/A).\n\n")
	}
}

// contenderRows writes one table row per cell and contender: the cell, the
// contender, cols of its runs, then for redisha, baseline and haproxy-b rows
// their per-round ratios to HAProxy in ratioFields (empty cells for the
// others).
func contenderRows(out *strings.Builder, cells []cellSpec, cs []contender, results []map[string][]result,
	cols func([]result) []string, ratioFields ...int) {
	for ci, cell := range cells {
		for _, c := range cs {
			rs := results[ci][c.name]
			ratio := make([]string, len(ratioFields))
			if c.name == "redisha" || c.name == "baseline" || c.name == "haproxy-b" {
				ratio = ratioCols(rs, results[ci]["haproxy"], ratioFields...)
			}
			fmt.Fprintf(out, "| %s | %d | %s | %s | %s |\n", cell.test, cell.pipeline, c.name,
				strings.Join(cols(rs), " | "), strings.Join(ratio, " | "))
		}
	}
}

// ratioCols is one table cell per field: the per-round ratios of rs to base
// in that field, as median [min..max].
func ratioCols(rs, base []result, fields ...int) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = spread(ratios(rs, base, f), "%.3f")
	}
	return out
}

func spread(v []float64, f string) string {
	if len(v) == 0 {
		return ""
	}
	return fmt.Sprintf(f+" ["+f+".."+f+"]", median(v), minOf(v), maxOf(v))
}

const haproxyCfg = `global
    maxconn %d
%sdefaults
    mode tcp
    timeout connect 3s
    timeout client 1h
    timeout server 1h
frontend redis
    bind 127.0.0.1:%d name redis
    default_backend redis_backend
backend redis_backend
    option tcp-check
    tcp-check send PING\r\n
    tcp-check expect string +PONG
    tcp-check send info\ replication\r\n
    tcp-check expect string role:master
    tcp-check send QUIT\r\n
    tcp-check expect string +OK
    server redis1 %s check inter 1s
`

// runOrder is the order of the contenders' runs for one cell of one round:
// row k of a Williams design, in which every contender runs right after
// every other one equally often over the rows. A rotation would not do: it
// always puts the same contender after the same one (HAProxy right after
// direct), and the A/A control showed what running after a given neighbour
// does to a ratio on this machine (Run H). Callers pass round+cell, so each
// cell cycles through every row.
func runOrder(cs []contender, k int) []contender {
	rows := williams(len(cs))
	row := rows[k%len(rows)]
	out := make([]contender, len(cs))
	for i, j := range row {
		out[i] = cs[j]
	}
	return out
}

// williams returns the rows of a Williams design for n treatments: over the
// rows every treatment comes right after every other one equally often (n
// rows for even n, 2n for odd n; once each, twice each).
func williams(n int) [][]int {
	first := make([]int, n) // 0, 1, n-1, 2, n-2, ...
	lo, hi := 1, n-1
	for i := 1; i < n; i++ {
		if i%2 == 1 {
			first[i], lo = lo, lo+1
		} else {
			first[i], hi = hi, hi-1
		}
	}
	var rows [][]int
	for s := 0; s < n; s++ {
		row := make([]int, n)
		for i := range row {
			row[i] = (first[i] + s) % n
		}
		rows = append(rows, row)
	}
	if n%2 == 1 {
		for s := 0; s < n; s++ {
			rev := make([]int, n)
			for i, v := range rows[s] {
				rev[n-1-i] = v
			}
			rows = append(rows, rev)
		}
	}
	return rows
}

func benchmark(addr, cpus, test string, pipeline int) result {
	host, port, _ := net.SplitHostPort(addr)
	n := *requests
	if pipeline > 1 {
		n = *requestsP
	}
	args := []string{"redis-benchmark", "-h", host, "-p", port, "-c", strconv.Itoa(*clients),
		"-n", strconv.Itoa(n), "-t", test, "-P", strconv.Itoa(pipeline), "--csv"}
	if cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	out, err := cmd.Output()
	if err != nil {
		die("redis-benchmark %v: %v\n%s", args, err, out)
	}
	// taskset execs redis-benchmark in its own process: the rusage is the
	// benchmark's.
	var bmk float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		bmk = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3 // µs
	}
	recs, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil || len(recs) < 2 {
		die("redis-benchmark csv: %v\n%s", err, out)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	f := func(name string) float64 {
		v, _ := strconv.ParseFloat(recs[1][col[name]], 64)
		return v
	}
	return result{rps: f("rps"), p50: f("p50_latency_ms"), p99: f("p99_latency_ms"), bmk: bmk}
}

// idleMemory opens idle connections through a contender, each sending one
// PING, and returns the contender's RSS (KiB) before and after.
func idleMemory(c contender) (before, after float64, err error) {
	before = rss(c.pid)
	conns := make([]net.Conn, 0, *idleConns)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
		time.Sleep(500 * time.Millisecond)
	}()
	for i := 0; i < *idleConns; i++ {
		cn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return before, 0, fmt.Errorf("idle connection %d: %v", i, err)
		}
		conns = append(conns, cn)
		if _, err := cn.Write([]byte("PING\r\n")); err != nil {
			return before, 0, fmt.Errorf("idle connection %d: %v", i, err)
		}
	}
	for i, cn := range conns {
		cn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(cn).ReadString('\n')
		if err != nil || line != "+PONG\r\n" {
			return before, 0, fmt.Errorf("idle connection %d answered %q %v", i, strings.TrimSpace(line), err)
		}
	}
	time.Sleep(time.Second)
	return before, rss(c.pid), nil
}

// cpuTime is the process's user+system CPU seconds so far (all threads).
func cpuTime(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		die("cpu time: %v", err)
	}
	// fields after the parenthesised command name; utime and stime are 14 and 15
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// sleeps is how many times the process's threads have given up their CPU
// to wait so far (voluntary context switches, summed over all threads).
func sleeps(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				total += n
			}
		}
	}
	return total
}

func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		die("rss: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

func field(rs []result, i int) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, [...]float64{fRPS: r.rps, fP50: r.p50, fP99: r.p99, fCPU: r.cpu, fSrv: r.srv, fBmk: r.bmk, fTot: r.tot, fSlp: r.slp}[i])
	}
	return out
}

// ratios are a/b per round of field i (fRPS, fP99, fCPU, ...).
func ratios(a, b []result, i int) []float64 {
	fa, fb := field(a, i), field(b, i)
	var out []float64
	for k := range fa {
		if k < len(fb) && fb[k] > 0 {
			out = append(out, fa[k]/fb[k])
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// startHAProxy starts HAProxy with the recipe's backend in front of backend,
// on cpus, with nbthread when it is above 0 (else HAProxy's default), and
// returns it as contender name with the process to stop.
func startHAProxy(name, dir, cpus string, nbthread int, limit uint64, backend string) (contender, *exec.Cmd) {
	threads := ""
	if nbthread > 0 {
		threads = fmt.Sprintf("    nbthread %d\n", nbthread)
	}
	port := freePort()
	cfg := filepath.Join(dir, name+".cfg")
	// HAProxy refuses to start when maxconn needs more descriptors than allowed.
	os.WriteFile(cfg, []byte(fmt.Sprintf(haproxyCfg, min(40000, int(limit)/2-100), threads, port, backend)), 0o644)
	cmd := start(name, cpus, nil, "haproxy", "-db", "-f", cfg)
	return contender{name, fmt.Sprintf("127.0.0.1:%d", port), cmd.Process.Pid}, cmd
}

// startRedisha starts redisha-proxy binary bin in front of backend, on cpus
// with env and extra arguments, and returns it as contender name with the
// process to stop.
func startRedisha(name, bin, cpus string, env []string, backend string, extra ...string) (contender, *exec.Cmd) {
	port, admin := freePort(), freePort()
	cmd := start(name, cpus, env, bin, append([]string{"run", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--admin", fmt.Sprintf("127.0.0.1:%d", admin), "--backends", backend, "--log-level", "warn"}, extra...)...)
	return contender{name, fmt.Sprintf("127.0.0.1:%d", port), cmd.Process.Pid}, cmd
}

func start(name, cpus string, env []string, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	if cpus != "" {
		cmd = exec.Command("taskset", append([]string{"-c", cpus, bin}, args...)...)
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		die("start %s: %v", name, err)
	}
	return cmd
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPing(addr string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			cn.SetDeadline(time.Now().Add(time.Second))
			cn.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(cn).ReadString('\n')
			cn.Close()
			if line == "+PONG\r\n" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	die("%s never answered PONG", addr)
}

// raiseNoFile lifts the open-files limit for this process and the servers it
// starts: to 200,000 when allowed (root with CAP_SYS_RESOURCE), else to the
// hard limit. It returns the limit in force.
func raiseNoFile() uint64 {
	var l syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	want := syscall.Rlimit{Cur: 200000, Max: 200000}
	if l.Max < want.Max && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
		return want.Cur
	}
	l.Cur = l.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}
