package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// runDurable compares the durable mode (durability: replicated, on
// redisha-proxy's durable listener) with the same proxy passing through,
// HAProxy and redis directly, against a master with one replica, nothing
// pinned; then the latency of one client's write through the durable
// listener against SET followed by WAIT 1 <timeout> sent straight to redis.
func runDurable(cells []cellSpec, limit uint64) string {
	dir, _ := os.MkdirTemp("", "redisha-bench-durable-")
	defer os.RemoveAll(dir)
	common := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxclients", "30000", "--tcp-backlog", "4096"}
	mPort, rPort := freePort(), freePort()
	os.MkdirAll(filepath.Join(dir, "m"), 0o755)
	os.MkdirAll(filepath.Join(dir, "r"), 0o755)
	master := start("redis", "", nil, "redis-server", append([]string{"--port", strconv.Itoa(mPort), "--dir", filepath.Join(dir, "m")}, common...)...)
	defer stop(master)
	mAddr := fmt.Sprintf("127.0.0.1:%d", mPort)
	waitPing(mAddr)
	replica := start("redis-replica", "", nil, "redis-server", append([]string{"--port", strconv.Itoa(rPort), "--dir", filepath.Join(dir, "r"),
		"--replicaof", "127.0.0.1", strconv.Itoa(mPort)}, common...)...)
	defer stop(replica)
	rAddr := fmt.Sprintf("127.0.0.1:%d", rPort)
	waitPing(rAddr)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(info(rAddr), "master_link_status:up") {
		if time.Now().After(deadline) {
			die("the replica never linked to the master")
		}
		time.Sleep(50 * time.Millisecond)
	}

	ha, haCmd := startHAProxy("haproxy", dir, "", 0, limit, mAddr)
	defer stop(haCmd)
	dAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	rp, rpCmd := startRedisha("redisha", *proxyBin, "", nil, mAddr, "--durable-listen", dAddr)
	defer stop(rpCmd)
	// The proxy's durability_timeout is its default (500 ms); the direct
	// SET+WAIT cell sends WAIT 1 -durable-timeout-ms (500 by default).
	cs := []contender{
		{"direct", mAddr, master.Process.Pid},
		ha,
		rp,
		{"durable", dAddr, rp.pid},
	}
	for _, c := range cs {
		waitPing(c.addr)
	}
	results := make([]map[string][]result, len(cells))
	for i := range results {
		results[i] = map[string][]result{}
	}
	// single-client write latency, per round: [contender] -> p50, p99 (ms)
	type lat struct{ p50, p99 float64 }
	lats := map[string][]lat{}
	latNames := []string{"direct SET+WAIT", "durable SET", "direct SET", "redisha SET"}
	fmt.Printf("durable: master %s with replica %s, nothing pinned; %d rounds\n", mAddr, rAddr, *rounds)
	for r := 0; r < *rounds; r++ {
		for ci, cell := range cells {
			for _, c := range runOrder(cs, r+ci) {
				results[ci][c.name] = append(results[ci][c.name], run(c, master.Process.Pid, "", cell))
			}
		}
		for k := 0; k < len(latNames); k++ {
			name := latNames[(k+r)%len(latNames)]
			addr, wait := mAddr, false
			switch name {
			case "direct SET+WAIT":
				wait = true
			case "durable SET":
				addr = cs[3].addr
			case "redisha SET":
				addr = cs[2].addr
			}
			d := writeLatency(addr, wait)
			lats[name] = append(lats[name], lat{pct(d, 0.5), pct(d, 0.99)})
		}
		fmt.Printf("  durable round %d/%d done\n", r+1, *rounds)
	}

	var out strings.Builder
	fmt.Fprintf(&out, "### Durable mode\n\nA master with one replica (redis-server, loopback), nothing pinned, default threads; `durable` is redisha-proxy's durable_listen "+
		"(WAIT 1 %d after each batch holding a write), `redisha` the same process's plain listener.\n\n", 500)
	fmt.Fprintf(&out, "| test | pipeline | contender | req/s median [min..max] | p50 ms | p99 ms | CPU µs/req median | durable/redisha req/s | durable/HAProxy req/s | durable/direct req/s |\n")
	fmt.Fprintf(&out, "|---|---|---|---|---|---|---|---|---|---|\n")
	for ci, cell := range cells {
		for _, c := range cs {
			rs := results[ci][c.name]
			e1, e2, e3 := "", "", ""
			if c.name == "durable" {
				e1 = spread(ratios(rs, results[ci]["redisha"], fRPS), "%.3f")
				e2 = spread(ratios(rs, results[ci]["haproxy"], fRPS), "%.3f")
				e3 = spread(ratios(rs, results[ci]["direct"], fRPS), "%.3f")
			}
			fmt.Fprintf(&out, "| %s | %d | %s | %s | %.3f | %.3f | %.2f | %s | %s | %s |\n", cell.test, cell.pipeline, c.name,
				spread(field(rs, fRPS), "%.0f"), median(field(rs, fP50)), median(field(rs, fP99)), median(field(rs, fCPU)), e1, e2, e3)
		}
	}
	fmt.Fprintf(&out, "\nOne client, %d writes per run, one at a time (SET k v; for `direct SET+WAIT`, SET then WAIT 1 %d, each waiting for its reply):\n\n", *latN, *durTO)
	fmt.Fprintf(&out, "| contender | p50 µs median [min..max] | p99 µs median [min..max] | p50 / direct SET+WAIT p50 |\n|---|---|---|---|\n")
	base := lats["direct SET+WAIT"]
	for _, name := range latNames {
		var p50, p99, rel []float64
		for i, l := range lats[name] {
			p50 = append(p50, l.p50*1e3)
			p99 = append(p99, l.p99*1e3)
			if i < len(base) && base[i].p50 > 0 {
				rel = append(rel, l.p50/base[i].p50)
			}
		}
		fmt.Fprintf(&out, "| %s | %s | %s | %s |\n", name, spread(p50, "%.0f"), spread(p99, "%.0f"), spread(rel, "%.3f"))
	}
	return out.String()
}

// writeLatency runs latN writes on one connection, one at a time, and
// returns each one's duration in ms (with wait: SET then WAIT 1 <timeout>,
// the pair timed together).
func writeLatency(addr string, wait bool) []float64 {
	cn, err := net.Dial("tcp", addr)
	if err != nil {
		die("latency: %v", err)
	}
	defer cn.Close()
	br := bufio.NewReader(cn)
	set := []byte("*3\r\n$3\r\nSET\r\n$5\r\nlat:k\r\n$3\r\nxyz\r\n")
	w := fmt.Sprintf("*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$%d\r\n%d\r\n", len(strconv.Itoa(*durTO)), *durTO)
	out := make([]float64, 0, *latN)
	for i := 0; i < *latN; i++ {
		t0 := time.Now()
		cn.Write(set)
		if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
			die("latency %s: %q %v", addr, line, err)
		}
		if wait {
			cn.Write([]byte(w))
			if line, err := br.ReadString('\n'); err != nil || line != ":1\r\n" {
				die("latency %s WAIT: %q %v", addr, line, err)
			}
		}
		out = append(out, float64(time.Since(t0).Microseconds())/1e3)
	}
	return out
}

func pct(v []float64, q float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// info is a node's INFO replication text ("" on error).
func info(addr string) string {
	cn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer cn.Close()
	cn.SetDeadline(time.Now().Add(2 * time.Second))
	cn.Write([]byte("INFO replication\r\n"))
	br := bufio.NewReader(cn)
	hdr, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(hdr, "$") {
		return ""
	}
	n, _ := strconv.Atoi(strings.TrimSpace(hdr[1:]))
	b := make([]byte, n+2)
	if _, err := io.ReadFull(br, b); err != nil {
		return ""
	}
	return string(b)
}
