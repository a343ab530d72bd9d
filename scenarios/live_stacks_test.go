package scenarios

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/stacks"
)

// renamedReference writes a copy of the reference stack whose nodes have other names (db-a, db-b,
// arbiter, lb-a, lb-b), whose sentinels monitor "cache" and whose HAProxy keeps its admin socket
// elsewhere: what a user's own stack directory may look like.
func renamedReference(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	names := map[string]string{"redis1": "db-a", "redis2": "db-b", "sentinel": "arbiter", "haproxy1": "lb-a", "haproxy2": "lb-b"}
	nodeName := regexp.MustCompile(`(?m)(name: |replicaof: )(redis1|redis2|sentinel|haproxy1|haproxy2)$`)
	quoted := regexp.MustCompile(`"(redis1|redis2)"`)
	server := regexp.MustCompile(`server (redis1|redis2) `)
	err := fs.WalkDir(stacks.FS, "reference", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(stacks.FS, p)
		if err != nil {
			return err
		}
		s := string(b)
		if d.Name() == "stack.yaml" {
			s = nodeName.ReplaceAllStringFunc(s, func(m string) string {
				k, v, _ := strings.Cut(m, ": ")
				return k + ": " + names[v]
			})
			s = strings.Replace(s, "name: reference\n", "name: renamed\n", 1)
			s = strings.Replace(s, "holders: [haproxy1, haproxy2]", "holders: [lb-a, lb-b]", 1)
			s = strings.Replace(s, "defaults:\n", "defaults:\n  masterName: cache\n  haproxySocket: /run/haproxy/stats.sock\n", 1)
		}
		s = quoted.ReplaceAllStringFunc(s, func(m string) string { return `"` + names[strings.Trim(m, `"`)] + `"` })
		s = server.ReplaceAllStringFunc(s, func(m string) string { return "server " + names[strings.Fields(m)[1]] + " " })
		return os.WriteFile(filepath.Join(dir, d.Name()), []byte(s), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "stack.yaml"))
	body := regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(string(b), "") // comments may keep the old names
	for _, old := range []string{"redis1", "redis2", "haproxy1", "haproxy2", "name: sentinel\n"} {
		if strings.Contains(body, old) {
			t.Fatalf("the copy still names %q:\n%s", old, b)
		}
	}
	return dir
}

// proxiesRouted reports, per proxy, whether the run recorded it routing somewhere.
func proxiesRouted(res *result.Result) map[string]bool {
	out := map[string]bool{}
	for _, r := range res.Analysis.Routes {
		out[r.Proxy] = out[r.Proxy] || len(r.Up) > 0
	}
	return out
}

// TestLiveRenamedStackRunsTheCatalog: the catalog's proxy-process-killed, unedited, against a copy
// of the reference stack with other node names, master name and HAProxy socket. Its roles
// resolve to that stack's nodes and programs (haproxy on the VIP holder lb-a), the VIP moves,
// and the observer reads both HAProxies where the stack says their sockets are.
func TestLiveRenamedStackRunsTheCatalog(t *testing.T) {
	requireLab(t)
	s := shortened(t, "proxy-process-killed", 5*time.Second, 0)
	res := runLiveOn(t, s, renamedReference(t))
	if res.Stack != "renamed" || res.StackParams.MasterName != "cache" {
		t.Fatalf("stack %s params %+v", res.Stack, res.StackParams)
	}
	if len(res.Faults) != 1 || !slices.Equal(res.Faults[0].Targets, []string{"lb-a"}) || !strings.Contains(res.Faults[0].Spec, "haproxy") {
		t.Fatalf("faults as applied: %+v", res.Faults)
	}
	if len(res.Timeline) != 1 || !slices.Equal(res.Timeline[0].Targets, []string{"lb-a"}) {
		t.Fatalf("timeline: %+v", res.Timeline)
	}
	if res.Summary.VIPChanges < 1 || res.Summary.Failovers != 0 {
		t.Fatalf("the VIP did not move off lb-a (%d changes, %d failovers)", res.Summary.VIPChanges, res.Summary.Failovers)
	}
	if r := proxiesRouted(res); !r["lb-a"] || !r["lb-b"] {
		t.Fatalf("HAProxy routes not observed at the stack's socket: %v", r)
	}
	if res.Outcome != result.OutcomePass {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Reasons)
	}
}

// TestLiveRedishaStack: the redisha stack's proxies are observed (their routes are on record and
// "proxies route to two masters" is measured: 0 s while the old master returns), redisha-witness's
// events are recorded like any sentinel's, and proxy-process-killed kills redisha-proxy.
func TestLiveRedishaStack(t *testing.T) {
	requireLab(t)
	t.Run("old-master-returns", func(t *testing.T) {
		s := shortened(t, "old-master-returns", 4*time.Second, 8*time.Second)
		res := runLiveOn(t, s, "redisha")
		if r := proxiesRouted(res); !r["haproxy1"] || !r["haproxy2"] {
			t.Fatalf("redisha-proxy routes not observed: %v", r)
		}
		if res.Summary.ProxiesObserved != 2 {
			t.Fatalf("%d proxies observed, want 2: proxies route to two masters is not measured", res.Summary.ProxiesObserved)
		}
		if res.Summary.DualRouteS != 0 {
			t.Fatalf("the redisha proxies routed to two masters for %.1fs", res.Summary.DualRouteS)
		}
		if res.Summary.TwoMasterS <= 0 {
			t.Fatalf("the old master did not come back as a master (two-master window %.1fs): nothing was measured", res.Summary.TwoMasterS)
		}
		evs, err := history.ReadFile[history.Event](filepath.Join(runDir(t, res), result.EventsFile))
		if err != nil {
			t.Fatal(err)
		}
		witness := 0
		for _, e := range evs {
			if e.Source == history.SourceSentinel && e.Node == "sentinel" && strings.HasPrefix(e.Kind, "+") {
				witness++
			}
		}
		if witness == 0 {
			t.Fatal("no event of redisha-witness recorded")
		}
		if res.Outcome != result.OutcomePass {
			t.Fatalf("outcome %s: %v", res.Outcome, res.Reasons)
		}
	})
	t.Run("proxy-process-killed", func(t *testing.T) {
		s := shortened(t, "proxy-process-killed", 5*time.Second, 0)
		res := runLiveOn(t, s, "redisha")
		if len(res.Faults) != 1 || !strings.Contains(res.Faults[0].Spec, "redisha-proxy") || !slices.Equal(res.Faults[0].Targets, []string{"haproxy1"}) {
			t.Fatalf("faults as applied: %+v", res.Faults)
		}
		if res.Summary.VIPChanges < 1 {
			t.Fatal("the VIP did not move off the proxy node whose redisha-proxy died")
		}
		if res.Outcome != result.OutcomePass {
			t.Fatalf("outcome %s: %v", res.Outcome, res.Reasons)
		}
	})
}
