package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHealthzAndMetrics(t *testing.T) {
	c := startCluster(t)
	p := startProxy(t, testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs()))
	waitRoute(t, p, c.a.addr)
	if reply := rawCommand(t, p.Addr(), "SET hz 1"); reply != "+OK" {
		t.Fatalf("got %q", reply)
	}
	// An open connection's bytes show before it closes.
	open := p.testClient(t, 2)
	if err := open.Set(bg, "open", strings.Repeat("x", 5000), 0).Err(); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + p.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/healthz")
	var h struct {
		Status, Master   string
		SentinelMajority bool `json:"sentinel_majority"`
	}
	json.Unmarshal([]byte(body), &h)
	if code != 200 || h.Master != c.a.addr || !h.SentinelMajority {
		t.Fatalf("/healthz %d %s", code, body)
	}
	waitFor(t, 2*time.Second, "byte counters", func() bool {
		_, m := get("/metrics")
		for _, line := range strings.Split(m, "\n") {
			var n float64
			if _, err := fmt.Sscanf(line, `redisha_proxy_bytes_total{direction="client_to_backend",listener="read_write"} %g`, &n); err == nil {
				return n >= 5000+10
			}
		}
		return false
	})
	var st0 StatusDoc
	if code, body := get("/status"); code != 200 || json.Unmarshal([]byte(body), &st0) != nil || st0.Status != "routing" ||
		st0.Route.Master != c.a.addr || !st0.SentinelMajority || len(st0.Sentinels) != 3 || !st0.Sentinels[0].Fresh ||
		st0.Sentinels[0].Master != c.a.addr || st0.Sentinels[0].LastView.IsZero() || st0.Listeners["read_write"] != p.Addr() {
		t.Errorf("/status while routing: %d %s", code, body)
	}
	// The promotion fast path is off by default: no provisional route, no counts.
	if st0.PromotionFastPath || st0.Provisional != "" || st0.ProvisionalEpoch != 0 || !st0.ProvisionalUntil.IsZero() || st0.FastPath != nil {
		t.Errorf("/status with the fast path off: promotion_fast_path %v provisional %q epoch %d until %v counts %+v",
			st0.PromotionFastPath, st0.Provisional, st0.ProvisionalEpoch, st0.ProvisionalUntil, st0.FastPath)
	}
	// Each line is waited for: under load the replica's first health
	// result may come after the route to the master was decided.
	for _, want := range []string{
		`redisha_proxy_backend_routed{backend="` + c.a.addr + `"} 1`,
		`redisha_proxy_backend_role{backend="` + c.b.addr + `",role="slave"} 1`,
		`redisha_proxy_sentinel_majority 1`,
		`redisha_proxy_connections_total{listener="read_write"} 2`,
		`redisha_proxy_switchovers_total 0`,
		`redisha_proxy_fast_path_routed_total 0`,
		`redisha_proxy_fast_path_confirmed_total 0`,
		`redisha_proxy_fast_path_withdrawn_total 0`,
		`redisha_proxy_route_provisional 0`,
	} {
		waitFor(t, 5*time.Second, "/metrics line "+want, func() bool {
			_, m := get("/metrics")
			return strings.Contains(m, want)
		})
	}
	// Losing the majority turns /healthz unavailable once the grace ends.
	for _, s := range c.sentinels {
		s.kill()
	}
	waitFor(t, 5*time.Second, "healthz 503", func() bool { code, _ := get("/healthz"); return code == 503 })
	// Liveness is not routing: the process still serves its listener.
	if code, body := get("/livez"); code != 200 {
		t.Errorf("/livez %d %s with no route, want 200", code, body)
	}
	var st StatusDoc
	if code, body := get("/status"); code != 200 || json.Unmarshal([]byte(body), &st) != nil ||
		st.Route.Master != "" || st.Route.Reason == "" || st.Status == "routing" || !st.Live || len(st.Sentinels) != 3 || len(st.Backends) != 2 {
		t.Errorf("/status with no route: %d %s", code, body)
	}
	rawCommand(t, p.Addr(), "PING")
	_, m := get("/metrics")
	if !strings.Contains(m, `redisha_proxy_connections_refused_total{listener="read_write",reason="no_master"} 1`) {
		t.Errorf("refusal not counted:\n%s", m)
	}
}

func TestACLUserForHealthChecks(t *testing.T) {
	a := startRedis(t, "user default off", "user checker on >s3cret +ping +info", "user app on >app ~* &* +@all")
	cfg := testConfig([]string{a.addr}, nil)
	cfg.Auth = Auth{User: "checker", Password: "wrong"}
	p := startProxy(t, cfg)
	waitFor(t, 3*time.Second, "failed check", func() bool {
		s := p.Snapshot()
		return len(s.Backends) == 1 && !s.Backends[0].OK && s.Backends[0].Err != ""
	})
	if p.Route().Master != "" {
		t.Fatal("routed to a backend whose check fails")
	}
	good := *cfg
	good.Auth.Password = "s3cret"
	if err := p.Reload(&good); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, p, a.addr) // the reload restarted the checks with the new password
	if reply := rawCommand(t, p.Addr(), "PING"); !strings.HasPrefix(reply, "-NOAUTH") {
		t.Fatalf("client without AUTH got %q (the proxy must not authenticate clients' sessions)", reply)
	}
}
