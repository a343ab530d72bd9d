package check

import (
	"fmt"
	"math"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/redisha/redisha/scenarios/history"
)

type regInput struct {
	write bool
	value string
}

type regOutput struct {
	value string
	nil   bool
}

// regState is a register's value; absent marks a key never written.
type regState struct {
	value  string
	absent bool
}

// registerModel is a single-register model, partitioned by key.
var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var order []string
		for _, o := range h {
			k := o.Metadata.(history.Op).Key
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], o)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, k := range order {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return regState{absent: true} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in := state.(regState), input.(regInput)
		if in.write {
			return true, regState{value: in.value}
		}
		out := output.(regOutput)
		if st.absent {
			return out.nil, st
		}
		return !out.nil && out.value == st.value, st
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("set(%q)", in.value)
		}
		out := output.(regOutput)
		if out.nil {
			return "get() -> nil"
		}
		return fmt.Sprintf("get() -> %q", out.value)
	},
}

// Linearizable checks the register operations (SET/GET) against a linearizable register with
// porcupine. Failed operations did not happen and are dropped; an indeterminate SET may have taken
// effect at any time after its invocation, so it gets an open return time; an indeterminate GET
// returned nothing and constrains nothing. A search that exceeds timeout yields Unknown, which
// fails required=true just like a violation.
func Linearizable(in Input, required bool, timeout time.Duration) Verdict {
	v := Verdict{Check: CheckLinearizable, Expected: "measured only", Metrics: map[string]float64{}}
	if required {
		v.Expected = "linearizable"
	}
	var ops []porcupine.Operation
	var base time.Time
	for _, o := range in.Ops {
		if base.IsZero() || o.Invoke.Before(base) {
			base = o.Invoke
		}
	}
	indet := 0
	for _, o := range in.Ops {
		if o.Kind != history.KindSet && o.Kind != history.KindGet {
			continue
		}
		if o.Status == history.Fail || (o.Kind == history.KindGet && o.Status == history.Indeterminate) {
			continue
		}
		op := porcupine.Operation{
			ClientId: o.Worker,
			Call:     o.Invoke.Sub(base).Nanoseconds(),
			Return:   o.Complete.Sub(base).Nanoseconds(),
			Metadata: o,
		}
		if o.Kind == history.KindSet {
			op.Input = regInput{write: true, value: o.Value}
			op.Output = regOutput{}
		} else {
			op.Input = regInput{}
			op.Output = regOutput{value: o.Value, nil: o.Nil}
		}
		if o.Status == history.Indeterminate {
			op.Return = math.MaxInt64
			indet++
		}
		ops = append(ops, op)
	}
	// The converged final state is one more read of every register, after everything else: a lost
	// write that no client read back is still a violation.
	if in.Final.Converged && !in.Final.ReadAt.IsZero() {
		keys := map[string]bool{}
		for _, op := range ops {
			keys[op.Metadata.(history.Op).Key] = true
		}
		t := in.Final.ReadAt.Sub(base).Nanoseconds()
		for k := range keys {
			val, ok := in.Final.Registers[k]
			fo := history.Op{ID: -1, Worker: -1, Kind: history.KindGet, Key: k, Value: val, Nil: !ok, Invoke: in.Final.ReadAt, Complete: in.Final.ReadAt, Status: history.OK, Node: "final read"}
			ops = append(ops, porcupine.Operation{ClientId: -1, Call: t, Return: t, Metadata: fo,
				Input: regInput{}, Output: regOutput{value: val, nil: !ok}})
		}
	}
	v.Metrics["ops"] = float64(len(ops))
	v.Metrics["indeterminate"] = float64(indet)
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, timeout)
	switch res {
	case porcupine.Ok:
		v.Status = Pass
		v.Observed = fmt.Sprintf("linearizable (%d register ops, %d indeterminate)", len(ops), indet)
	case porcupine.Illegal:
		v.Status = Fail
		v.Observed = fmt.Sprintf("not linearizable (%d register ops, %d indeterminate)", len(ops), indet)
		if !required {
			v.Status = Pass
		}
		perKey := map[string]int{}
		for _, op := range ops {
			perKey[op.Metadata.(history.Op).Key]++
		}
		for _, part := range info.PartialLinearizationsOperations() {
			// Each partition's longest partial linearization shows where the search got stuck.
			longest := []porcupine.Operation(nil)
			for _, lin := range part {
				if len(lin) > len(longest) {
					longest = lin
				}
			}
			if len(longest) == 0 {
				continue
			}
			key := longest[0].Metadata.(history.Op).Key
			if len(longest) == perKey[key] {
				continue
			}
			last := longest[len(longest)-1].Metadata.(history.Op)
			evidence(&v, "key %s: only %d ops linearize, ending with %s; the next op contradicts it", key, len(longest), opRef(last))
		}
	default:
		v.Status = Unknown
		v.Observed = fmt.Sprintf("unknown: the search exceeded %s (%d register ops)", timeout, len(ops))
		if !required {
			v.Status = Pass
		}
	}
	return v
}
