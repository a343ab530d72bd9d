package scenarios

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/spec"
)

// referenceNodes are the node names of the built-in reference stack.
var referenceNodes = map[string]bool{"redis1": true, "redis2": true, "sentinel": true, "haproxy1": true, "haproxy2": true, "client": true}

func TestCatalog(t *testing.T) {
	all, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"master-crash", "master-crash-restart-fast", "master-freeze-long", "master-freeze-short",
		"master-replica-partition", "master-minority", "master-isolated", "sentinel-crash", "sentinel-partitioned",
		"proxy-crash", "proxy-process-killed", "proxy-partition", "old-master-returns", "replica-crash",
		"replica-lagging", "sentinel-latency", "sentinel-latency-low", "flapping-link", "master-and-proxy-crash", "rolling-restart"}
	have := map[string]*spec.Scenario{}
	for _, s := range all {
		have[s.Name] = s
		if s.Description == "" {
			t.Errorf("%s: no description", s.Name)
		}
		if s.Expect.Failover == nil {
			t.Errorf("%s: states no failover expectation", s.Name)
		}
		for _, f := range s.Faults {
			for _, n := range append(append(append([]string(nil), f.Targets...), f.A...), f.B...) {
				if !referenceNodes[n] {
					t.Errorf("%s: fault names %q, not a node of the reference stack", s.Name, n)
				}
			}
		}
	}
	for _, n := range want {
		if have[n] == nil {
			t.Errorf("catalog lacks %s", n)
		}
	}
	for _, n := range DemoScenarios {
		if have[n] == nil {
			t.Errorf("demo names %s, not in the catalog", n)
		}
	}
}

func TestTimelineWithoutRandomness(t *testing.T) {
	s, err := Load("rolling-restart")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Timeline(1), s.Timeline(999)) {
		t.Fatal("a fixed timeline depends on the seed")
	}
	tl := s.Timeline(1)
	if len(tl) != 5 || tl[4].Fault.Targets[0] != "redis1" || tl[4].At != 36*time.Second {
		t.Fatalf("timeline: %+v", tl)
	}
}

func TestLoadUnknown(t *testing.T) {
	if _, err := Load("no-such-scenario"); err == nil || !strings.Contains(err.Error(), "master-crash") {
		t.Fatalf("err = %v", err)
	}
}

func TestVariantParams(t *testing.T) {
	v, ok := variant("reference-minreplicas")
	if !ok || v.Base != "reference" {
		t.Fatal("no reference-minreplicas variant")
	}
	got := spec.StackParams{DownAfterMs: 2000, MinReplicasMaxLag: 5}.Merge(v.Params)
	if got.DownAfterMs != 2000 || got.MinReplicasToWrite != 1 || got.MinReplicasMaxLag != 5 {
		t.Fatalf("scenario params must win over the variant's: %+v", got)
	}
}

func TestBuiltinKnownVerdicts(t *testing.T) {
	all, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range all {
		names[s.Name] = true
	}
	for _, stack := range []string{"reference", "reference-minreplicas"} {
		k, err := LoadKnown(stack, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(k) == 0 {
			t.Fatalf("%s: no known findings loaded", stack)
		}
		for sc := range k {
			if !names[sc] {
				t.Errorf("%s: known verdicts for %q, not a catalog scenario", stack, sc)
			}
		}
	}
	if _, err := ParseKnown("k.yaml", []byte("master-crash:\n  lost-writes: {status: pass, why: x}\n")); err == nil {
		t.Error("a known verdict of pass accepted")
	}
	if _, err := ParseKnown("k.yaml", []byte("master-crash:\n  lost-writes: {status: fail}\n")); err == nil {
		t.Error("a known finding without a reason accepted")
	}
	if _, err := ParseKnown("k.yaml", []byte("master-crash:\n  lost: {status: fail, why: x}\n")); err == nil {
		t.Error("an unknown check accepted")
	}
}
