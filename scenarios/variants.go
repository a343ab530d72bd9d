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
	Params: spec.StackParams{Durability: "replicated", Guard: true},
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
