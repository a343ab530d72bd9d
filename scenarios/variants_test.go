package scenarios

import (
	"testing"

	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/lab"
	"github.com/redisha/redisha/scenarios/spec"
)

// Every variant names a built-in base stack, and its known verdicts (if any) name catalog
// scenarios.
func TestVariantsResolve(t *testing.T) {
	all, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range all {
		names[s.Name] = true
	}
	for _, v := range Variants {
		if _, err := lab.LoadStack(v.Base); err != nil {
			t.Errorf("%s: base %s: %v", v.Name, v.Base, err)
		}
		k, err := LoadKnown(v.Name, "")
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		for sc := range k {
			if !names[sc] {
				t.Errorf("%s: known verdicts for %q, not a catalog scenario", v.Name, sc)
			}
		}
	}
}

// redisha-durable is the redisha stack with the proxies' replicated durability and the restart
// guard (issue 14 item 3); its only known finding is the one failover the guard asks for in
// master-crash-restart-fast, and no scenario may lose a write on it.
func TestRedishaDurableVariant(t *testing.T) {
	v, ok := variant("redisha-durable")
	if !ok || v.Base != "redisha" {
		t.Fatalf("no redisha-durable variant on the redisha stack: %+v", v)
	}
	if v.Params.Durability != "replicated" || !v.Params.Guard {
		t.Fatalf("params %+v: want durability replicated and the guard", v.Params)
	}
	// A scenario's own parameters keep the variant's switches unless they set them.
	got := spec.StackParams{DownAfterMs: 2000}.Merge(v.Params)
	if got.Durability != "replicated" || !got.Guard || got.DownAfterMs != 2000 {
		t.Fatalf("merged %+v", got)
	}
	k, err := LoadKnown("redisha-durable", "")
	if err != nil {
		t.Fatal(err)
	}
	if f := k["master-crash-restart-fast"][check.CheckFailover]; f.Status != check.Fail {
		t.Errorf("master-crash-restart-fast: the guard's failover is not a known verdict: %+v", k)
	}
	for sc, m := range k {
		if _, ok := m[check.CheckLostWrites]; ok {
			t.Errorf("%s: a lost-writes finding on the durable variant", sc)
		}
	}
	// The plain redisha stack has neither switch.
	st, err := lab.LoadStack("redisha")
	if err != nil {
		t.Fatal(err)
	}
	if st.Defaults.Durability != "" || st.Defaults.Guard {
		t.Errorf("redisha defaults turn on durability or the guard: %+v", st.Defaults)
	}
}

// The durable variant judges lost writes in every scenario: zero where the scenario says
// nothing, the scenario's own bound where it sets one; other variants add nothing.
func TestVariantExpectations(t *testing.T) {
	v, _ := variant("redisha-durable")
	if got := v.Expectations(spec.Expect{}); got.MaxLostWrites == nil || *got.MaxLostWrites != 0 {
		t.Fatalf("redisha-durable: max-lost-writes %v, want 0", got.MaxLostWrites)
	}
	five := 5
	if got := v.Expectations(spec.Expect{MaxLostWrites: &five}); *got.MaxLostWrites != 5 {
		t.Errorf("the scenario's own bound must win: %d", *got.MaxLostWrites)
	}
	got := v.Expectations(spec.Expect{})
	*got.MaxLostWrites = 7
	if *v.MaxLostWrites != 0 {
		t.Error("Expectations shares the variant's value with its result")
	}
	ref, _ := variant("reference-minreplicas")
	if got := ref.Expectations(spec.Expect{}); got.MaxLostWrites != nil {
		t.Errorf("reference-minreplicas adds max-lost-writes %d", *got.MaxLostWrites)
	}
}
