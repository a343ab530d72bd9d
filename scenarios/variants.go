package scenarios

import "fmt"

// Variant is a built-in stack expressed as another stack plus parameters, so its templates are
// the base stack's own and cannot drift from them.
type Variant struct {
	Name        string
	Base        string
	Description string
	Params      StackParams // applied under the scenario's own parameters
}

// Variants are the built-in stack variants.
var Variants = []Variant{{
	Name: "reference-minreplicas",
	Base: "reference",
	Description: "the reference stack with min-replicas-to-write 1 and min-replicas-max-lag 10: " +
		"a master that lost its replica stops acknowledging writes",
	Params: StackParams{MinReplicasToWrite: 1, MinReplicasMaxLag: 10},
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

// merge returns p with every zero field taken from under.
func (p StackParams) merge(under StackParams) StackParams {
	pick := func(a, b int) int {
		if a != 0 {
			return a
		}
		return b
	}
	out := p
	out.DownAfterMs = pick(p.DownAfterMs, under.DownAfterMs)
	out.FailoverTimeoutMs = pick(p.FailoverTimeoutMs, under.FailoverTimeoutMs)
	out.Quorum = pick(p.Quorum, under.Quorum)
	out.CheckIntervalMs = pick(p.CheckIntervalMs, under.CheckIntervalMs)
	out.MinReplicasToWrite = pick(p.MinReplicasToWrite, under.MinReplicasToWrite)
	out.MinReplicasMaxLag = pick(p.MinReplicasMaxLag, under.MinReplicasMaxLag)
	if out.Persistence == "" {
		out.Persistence = under.Persistence
	}
	return out
}

func (v Variant) String() string { return fmt.Sprintf("%s (%s + params)", v.Name, v.Base) }
