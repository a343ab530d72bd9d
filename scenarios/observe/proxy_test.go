package observe

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/history"
)

var (
	proxyBinOnce sync.Once
	proxyBin     string
	proxyBinErr  error
)

// redishaProxy builds cmd/redisha-proxy once per test binary.
func redishaProxy(t *testing.T) string {
	t.Helper()
	proxyBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rho-bin")
		if err != nil {
			proxyBinErr = err
			return
		}
		proxyBin = filepath.Join(dir, "redisha-proxy")
		if out, err := exec.Command("go", "build", "-o", proxyBin, "github.com/redisha/redisha/cmd/redisha-proxy").CombinedOutput(); err != nil {
			proxyBinErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if proxyBinErr != nil {
		t.Fatal(proxyBinErr)
	}
	return proxyBin
}

// TestObserverSeesRedishaProxiesRouteToTwoMasters proves the routing observation can fail: two
// redisha-proxy processes with sentinels disabled, each in its own network namespace and each
// given one backend, while both redis nodes claim master. The observer reads each proxy's admin
// endpoint inside its namespace (as the runner does in a container), and "proxies route to two
// masters" must come out non-zero. A partition between a proxy and its backend leaves the proxy
// readable: the observer sees it hold, not "unreachable".
func TestObserverSeesRedishaProxiesRouteToTwoMasters(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: namespaces and real daemons")
	}
	testenv.RequireRoot(t)
	bin := redishaProxy(t)
	topo := testenv.NewTopology(t, "rho", netip.MustParsePrefix("10.79.31.0/24"), "r1", "r2", "p1", "p2")
	r1 := testenv.StartRedis(t, testenv.RedisOptions{Host: topo.Host("r1").IP.String(), Port: 6379, Netns: topo.Host("r1").Netns})
	r2 := testenv.StartRedis(t, testenv.RedisOptions{Host: topo.Host("r2").IP.String(), Port: 6379, Netns: topo.Host("r2").Netns})
	names := map[string]string{r1.Addr(): "r1", r2.Addr(): "r2"}
	var proxies []Proxy
	for _, c := range []struct{ host, backend string }{{"p1", r1.Addr()}, {"p2", r2.Addr()}} {
		h := topo.Host(c.host)
		dir := t.TempDir()
		cfg := fmt.Sprintf("listen: 0.0.0.0:6379\nadmin: 127.0.0.1:9121\nbackends: [%s]\ncheck:\n  interval: 200ms\n  timeout: 200ms\nlog:\n  level: warn\n", c.backend)
		path := filepath.Join(dir, "proxy.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		testenv.StartProcess(t, testenv.ProcessSpec{Name: "proxy-" + c.host, Argv: []string{bin, "run", "--config", path}, Dir: dir, Netns: h.Netns})
		proxies = append(proxies, Proxy{Node: c.host, Kind: ProxyRedisha, Admin: "127.0.0.1:9121", Netns: h.NsPath,
			NodeOf: func(a string) string { return names[a] }})
	}
	rec := &memRec{}
	obs := Start(context.Background(), Config{Proxies: proxies, Rec: rec, Poll: 100 * time.Millisecond})
	defer obs.Stop()
	routes := func(node, up string) func(history.Event) bool {
		return func(e history.Event) bool {
			return e.Source == history.SourceProxy && e.Kind == KindRoute && e.Node == node && e.Attrs["up"] == up && e.Detail != "unreachable"
		}
	}
	rec.waitFor(t, 10*time.Second, "p1 routing to r1", routes("p1", "r1"))
	rec.waitFor(t, 10*time.Second, "p2 routing to r2", routes("p2", "r2"))
	time.Sleep(300 * time.Millisecond) // let the split last a little on the record
	ev := rec.events()
	history.SortEvents(ev)
	if d := check.DualRouteWindow(ev, time.Now()); d <= 0 {
		t.Fatalf("two proxies route to two masters, measured %v; events %+v", d, ev)
	}
	for _, e := range ev {
		if e.Node == "p1" && e.Attrs["up"] == "r1" && !strings.Contains(e.Detail, "route=r1 r1=master") {
			t.Fatalf("detail %q", e.Detail)
		}
	}
	// Cut p1 from its only backend: the proxy stops routing, and the observer still reads it.
	heal := topo.Cut(topo.Host("p1"), topo.Host("r1"))
	defer heal()
	held := rec.waitFor(t, 10*time.Second, "p1 without a route", routes("p1", ""))
	if !strings.Contains(held.Detail, "route=none") || !strings.Contains(held.Detail, "r1=down") || held.Attrs["reason"] == "" {
		t.Fatalf("held route: %+v; all events: %+v", held, rec.events())
	}
}

func TestParseProxyStatus(t *testing.T) {
	text := `{"status":"ok","route":{"master":"10.0.0.11:6379","hold":false},"backends":[
{"addr":"10.0.0.11:6379","role":"master","ok":true,"fresh":true},
{"addr":"10.0.0.12:6379","role":"slave","ok":true,"fresh":true},
{"addr":"10.0.0.13:6379","role":"slave","ok":true,"fresh":false},
{"addr":"10.0.0.14:6379","ok":false,"fresh":true,"err":"refused"}]}`
	got, err := parseProxyStatus([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"10.0.0.11:6379": "master", "10.0.0.12:6379": "replica", "10.0.0.13:6379": "down", "10.0.0.14:6379": "down"}
	if got.Route != "10.0.0.11:6379" || fmt.Sprint(got.Backends) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want route 10.0.0.11:6379 and %v", got, want)
	}
	if _, err := parseProxyStatus([]byte("not json")); err == nil {
		t.Fatal("garbage /status accepted")
	}
}
