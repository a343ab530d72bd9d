package scenarios

import (
	"fmt"

	"github.com/redisha/redisha/scenarios/spec"
)

// Variant is a built-in stack expressed as another stack plus parameters, so its templates are
// the base stack's own and cannot drift from them.
type Variant struct {
	Name        string
	Base        string
	Description string
	Params      spec.StackParams // applied under the scenario's own parameters
	// MaxLostWrites, when set, is the variant's promise on acknowledged writes: it applies to
	// every scenario run on the variant that sets no max-lost-writes of its own (Expectations).
	MaxLostWrites *int
}

// Expectations returns a scenario's expectations on this variant: the scenario's own, with the
// variant's MaxLostWrites where the scenario judges no lost writes. The runner applies it when
// it resolves a variant, beside Params.
func (v Variant) Expectations(e spec.Expect) spec.Expect {
	if e.MaxLostWrites == nil && v.MaxLostWrites != nil {
		n := *v.MaxLostWrites
		e.MaxLostWrites = &n
	}
	return e
}

// Variants are the built-in stack variants.
var Variants = []Variant{{
	Name: "reference-minreplicas",
	Base: "reference",
	Description: "the reference stack with min-replicas-to-write 1 and min-replicas-max-lag 10: " +
		"a master that lost its replica stops acknowledging writes",
	Params: spec.StackParams{MinReplicasToWrite: 1, MinReplicasMaxLag: 10},
}, {
	Name: "redisha-durable",
	Base: "redisha",
	Description: "the redisha stack with redisha-proxy's durability: replicated (a write is acknowledged " +
		"only once the replica has it) and redisha-guard before every start of redis-server " +
		"(a master restarted faster than down-after asks for a failover instead of wiping its replica)",
	// The "no replica" policy is refuse, said explicitly so every run's recorded stack
	// parameters show it: an acknowledged write is on two nodes, at the price of no write
	// acknowledged while the master has no replica (docs/durability.md, "The variant's
	// policy"). A scenario's stack.params.extra.durabilityNoReplica: async selects the other.
	Params: spec.StackParams{Durability: "replicated", Guard: true,
		Extra: map[string]string{"durabilityNoReplica": "refuse"}},
	// Issue 14: zero acknowledged writes lost in every catalog scenario, including those that
	// judge no lost writes on the other stacks (master-crash and its kin).
	MaxLostWrites: new(int),
}}

// variant returns the named variant, if any.
func variant(name string) (Variant, bool) {
	for _, v := range Variants {
		if v.Name == name {
			return v, true
		}
	}
	return Variant{}, false
}

func (v Variant) String() string { return fmt.Sprintf("%s (%s + params)", v.Name, v.Base) }
