package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisha/redisha/components/testenv"
)

// testLabs records the names of labs this test binary made, so TestMain can
// check that nothing of them remains (other packages' labs may run meanwhile).
var (
	testLabsMu sync.Mutex
	testLabs   []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	testLabsMu.Lock()
	names := testLabs
	testLabsMu.Unlock()
	if len(names) > 0 {
		if left := leftoversOf(names); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: lab leftovers after the tests: %s\n", strings.Join(left, "; "))
			// Clean up anyway so the next run starts fresh.
			_, _ = GC(context.Background(), GCOptions{Only: names, Force: true})
			code = 1
		} else {
			fmt.Printf("lab: no leftovers of %d test labs\n", len(names))
		}
	}
	os.Exit(code)
}

// leftoversOf lists whatever remains of the named labs: containers and
// networks by label, state files, netns, links, rules, nft tables.
func leftoversOf(names []string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	only := map[string]bool{}
	for _, n := range names {
		only[n] = true
	}
	c, err := dockerClient()
	if err != nil {
		return []string{err.Error()}
	}
	defer c.Close()
	for _, n := range names {
		ctrs, err := c.ContainerList(ctx, containerListAll(n))
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		for _, ct := range ctrs.Items {
			out = append(out, "container "+ct.ID[:12]+" of "+n)
		}
		nets, _ := c.NetworkList(ctx, networkList(n))
		for _, nw := range nets.Items {
			out = append(out, "network "+nw.Name)
		}
		if _, err := os.Stat(statePath(n)); err == nil {
			out = append(out, "state "+statePath(n))
		}
	}
	return append(out, hostLeftovers(only)...)
}

// upReference brings up the reference stack for a test and closes it after.
func upReference(t *testing.T, params Params) *Lab {
	t.Helper()
	// The lab lives as long as this context: Up closes it on cancel.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return upReferenceCtx(t, ctx, params)
}

// upReferencePrereqs fails (skips under -short) without root and Docker.
func upReferencePrereqs(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: brings up containers")
	}
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
}

func upReferenceCtx(t *testing.T, ctx context.Context, params Params) *Lab {
	t.Helper()
	upReferencePrereqs(t)
	stack, err := LoadStack("reference")
	if err != nil {
		t.Fatal(err)
	}
	name, _ := normalizeName("")
	testLabsMu.Lock()
	testLabs = append(testLabs, name)
	testLabsMu.Unlock()
	l, err := Up(ctx, stack, params, Options{Name: name, LogDir: t.TempDir()})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Logf("lab up %s (reference stack) took %v; subnet %s, vip %s", l.Name, l.UpTime.Round(time.Millisecond), l.Subnet, l.VIP)
	fmt.Printf("lab up (reference stack): %v\n", l.UpTime.Round(time.Millisecond))
	return l
}

// observer connects from the host side (exempt from partitions).
func observer(t *testing.T, n *Node, port int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(n.IP().String(), fmt.Sprint(port)), DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestReferenceStackHealthy(t *testing.T) {
	l := upReference(t, Params{DownAfterMs: 2000})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	r1, r2 := l.Node("redis1"), l.Node("redis2")
	info, err := observer(t, r2, 6379).Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_host:"+r1.IP().String()) || !strings.Contains(info, "master_link_status:up") {
		t.Fatalf("redis2 replication:\n%s", info)
	}

	for _, n := range []*Node{r1, r2, l.Node("sentinel")} {
		m, err := observer(t, n, 26379).Do(ctx, "SENTINEL", "MASTER", "mymaster").Result()
		if err != nil {
			t.Fatalf("%s sentinel: %v", n.Name(), err)
		}
		fields := sentinelFields(t, m)
		if fields["ip"] != r1.IP().String() || fields["num-slaves"] != "1" || fields["num-other-sentinels"] != "2" || fields["quorum"] != "2" {
			t.Errorf("%s sentinel sees ip=%s num-slaves=%s num-other-sentinels=%s quorum=%s", n.Name(), fields["ip"], fields["num-slaves"], fields["num-other-sentinels"], fields["quorum"])
		}
		if fields["down-after-milliseconds"] != "2000" {
			t.Errorf("%s: down-after-milliseconds %s, want the param 2000", n.Name(), fields["down-after-milliseconds"])
		}
	}

	holders, err := l.VIPHolders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(holders) != 1 {
		t.Fatalf("VIP holders %v, want exactly one", holders)
	}
	// haproxy1 has the higher priority: it holds the VIP (at once, or after
	// preempting should haproxy2's keepalived have won the start-up race),
	// and the VIP answers through it.
	waitVIPAt(t, ctx, l, l.Node("haproxy1"))

	// A SET through the VIP from the client namespace lands on redis1 and
	// replicates to redis2.
	cl := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(l.VIP.String(), "6379"), Dialer: l.ClientDial, MaxRetries: -1})
	defer cl.Close()
	val := fmt.Sprintf("v-%d", time.Now().UnixNano())
	if err := cl.Set(ctx, "lab:test", val, 0).Err(); err != nil {
		t.Fatalf("SET via VIP from the client namespace: %v", err)
	}
	if got, err := observer(t, r1, 6379).Get(ctx, "lab:test").Result(); err != nil || got != val {
		t.Fatalf("redis1 GET = %q, %v; want %q", got, err, val)
	}
	waitFor(t, ctx, "the write to reach redis2", func() bool {
		got, err := observer(t, r2, 6379).Get(ctx, "lab:test").Result()
		return err == nil && got == val
	})
	// The connection reached Redis through haproxy1, the VIP holder.
	who, err := cl.ClientInfo(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(who.Addr); host != l.Node("haproxy1").IP().String() {
		t.Fatalf("connection via the VIP comes from %s, want haproxy1 %s", who.Addr, l.Node("haproxy1").IP())
	}
	// The client namespace reaches the lab network and nothing else.
	if out, err := l.Client.Exec(ctx, "ip", "-4", "route", "show", "default"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("client default route %q, %v", out, err)
	}
	for _, n := range l.Nodes {
		if out, err := n.Exec(ctx, "ip", "-4", "route", "show", "default"); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("%s default route %q, %v", n.Name(), out, err)
		}
	}

	// Node facts the fault injector relies on.
	for _, n := range l.Nodes {
		if n.ContainerID() == "" || n.Pid() == 0 || !strings.HasPrefix(n.NetnsPath(), "/proc/") {
			t.Errorf("%s: container %q pid %d netns %q", n.Name(), n.ContainerID(), n.Pid(), n.NetnsPath())
		}
	}
	pid, err := r1.DaemonPID(ctx, "redis-server")
	if err != nil || pid == r1.Pid() || pid == 0 {
		t.Fatalf("DaemonPID(redis-server) = %d, %v (init %d)", pid, err, r1.Pid())
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(b)) != "redis-server" {
		t.Fatalf("pid %d comm %q %v", pid, b, err)
	}
	// keepalived runs as a parent and a VRRP child: DaemonPIDs finds both.
	if pids, err := l.Node("haproxy1").DaemonPIDs(ctx, "keepalived"); err != nil || len(pids) < 2 {
		t.Fatalf("DaemonPIDs(keepalived) = %v, %v; want parent and VRRP child", pids, err)
	}
	if _, err := l.Node("sentinel").DaemonPID(ctx, "redis-server"); err == nil {
		t.Fatal("the sentinel node runs no redis-server")
	}
	// Node logs stream to files: both of redis1's daemons, and keepalived.
	for file, want := range map[string][]string{
		"redis1.log":   {"Ready to accept connections", "Sentinel ID is"},
		"haproxy1.log": {"Entering MASTER STATE"},
	} {
		waitFor(t, ctx, file+" to show the daemons", func() bool {
			b, _ := os.ReadFile(l.LogDir + "/" + file)
			for _, w := range want {
				if !strings.Contains(string(b), w) {
					return false
				}
			}
			return true
		})
	}
}

func sentinelFields(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch m := v.(type) {
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			out[fmt.Sprint(m[i])] = fmt.Sprint(m[i+1])
		}
	case map[any]any:
		for k, v := range m {
			out[fmt.Sprint(k)] = fmt.Sprint(v)
		}
	default:
		t.Fatalf("unexpected SENTINEL MASTER reply %T", v)
	}
	return out
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
