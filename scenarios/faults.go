package scenarios

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/lab"
	"github.com/redisha/redisha/scenarios/lab/fault"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

// topology describes a stack for role resolution; master and holders are the node names that
// hold those places ("" / nil: not known yet).
func topology(st *lab.Stack, master string, holders []string) spec.Topology {
	t := spec.Topology{Master: master, VIPHolders: holders}
	for i := range st.Nodes {
		t.Nodes = append(t.Nodes, spec.TopologyNode{Name: st.Nodes[i].Name, Daemons: st.Nodes[i].DaemonRoles()})
	}
	return t
}

// preflight resolves the scenario's roles and node names against the stack's description before
// the lab starts, with the stack as its files set it up (the first redis node is master, the VIP
// with its first holder), so a scenario that cannot run on the stack fails at once.
func (r *runner) preflight(st *lab.Stack) error {
	master, holders := "", []string(nil)
	for i := range st.Nodes {
		if master == "" && st.Nodes[i].DaemonWithRole(spec.DaemonRedis) != "" {
			master = st.Nodes[i].Name
		}
	}
	if st.VIP != nil && len(st.VIP.Holders) > 0 {
		holders = st.VIP.Holders[:1]
	}
	res, err := r.s.Resolve(spec.ResolveRoles(topology(st, master, holders)))
	if err != nil {
		return err
	}
	names := map[string]bool{"client": true}
	var all []string
	for _, n := range st.Nodes {
		names[n.Name] = true
		all = append(all, n.Name)
	}
	for i, f := range res.Faults {
		for _, t := range slices.Concat(f.Targets, f.A, f.B) {
			if !names[t] {
				return fmt.Errorf("%s: faults[%d] names %q, not a node of stack %s (nodes: %s, client)", r.s.Source, i, t, st.Name, strings.Join(all, ", "))
			}
		}
	}
	return nil
}

// resolveRoles resolves the scenario's roles on the running lab: the quorum's master and the VIP
// holders as the workload is about to start. The run then uses the resolved scenario (its
// timeline and result name nodes), and events.jsonl records what each role meant.
func (r *runner) resolveRoles(ctx context.Context) error {
	master := ""
	_, redises := r.endpoints()
	for _, e := range redises {
		if e.Addr == r.initial {
			master = e.Node
		}
	}
	var holders []string
	if r.lab.VIP.IsValid() {
		hs, err := r.lab.VIPHolders(ctx)
		if err != nil {
			return fmt.Errorf("roles: VIP holders: %w", err)
		}
		for _, h := range hs {
			holders = append(holders, h.Name())
		}
	}
	r.roles = spec.ResolveRoles(topology(r.lab.Stack, master, holders))
	res, err := r.s.Resolve(r.roles)
	if err != nil {
		return err
	}
	attrs := map[string]string{}
	for role, nodes := range r.roles.Nodes {
		attrs[spec.RolePrefix+role] = strings.Join(nodes, ",")
	}
	r.events.Write(history.Event{Time: time.Now(), Source: history.SourceRunner, Kind: KindRoles, Attrs: attrs})
	r.s = res
	return nil
}

// KindRoles is the runner event recording what each node role resolved to.
const KindRoles = "roles"

// checkTargets rejects a fault naming a node the stack does not have, before anything runs.
func (r *runner) checkTargets() error {
	names := map[string]bool{"client": r.lab.Client != nil}
	var all []string
	for _, n := range r.lab.Nodes {
		names[n.Name()] = true
		all = append(all, n.Name())
	}
	for i, f := range r.s.Faults {
		for _, t := range slices.Concat(f.Targets, f.A, f.B) {
			if !names[t] {
				return fmt.Errorf("%s: faults[%d] names %q, not a node of stack %s (nodes: %s, client)", r.s.Source, i, t, r.lab.Stack.Name, strings.Join(all, ", "))
			}
		}
	}
	return nil
}

// needsClientPath reports whether a fault acts on the client path, so the clients go through its proxy.
func (r *runner) needsClientPath() bool {
	for _, f := range r.s.Faults {
		if strings.HasPrefix(f.Kind, "client-") {
			return true
		}
	}
	return false
}

func (r *runner) targets() []fault.Target {
	out := make([]fault.Target, 0, len(r.lab.Nodes)+1)
	for _, n := range r.lab.Nodes {
		out = append(out, n)
	}
	if r.lab.Client != nil {
		out = append(out, r.lab.Client)
	}
	return out
}

// specs turns one timeline entry into injector specs: node faults act on each target separately,
// each on the daemon that plays the fault's daemon role on that node.
func specs(tf spec.TimedFault, roles spec.Roles) ([]fault.Spec, error) {
	f := tf.Fault
	base := fault.Spec{Kind: fault.Kind(f.Kind), A: f.A, B: f.B, OneWay: f.OneWay, Daemon: f.Daemon,
		Delay: f.Latency.D(), Jitter: f.Jitter.D(), Loss: f.Loss, CPU: f.CPU, RateKBps: int64(f.RateKBps), Timeout: f.Timeout.D()}
	if len(f.Targets) == 0 {
		return []fault.Spec{base}, nil
	}
	out := make([]fault.Spec, 0, len(f.Targets))
	for _, t := range f.Targets {
		s := base
		s.Node = t
		d, err := roles.Daemon(t, f.Daemon)
		if err != nil {
			return nil, err
		}
		s.Daemon = d
		out = append(out, s)
	}
	return out, nil
}

func (r *runner) runFault(ctx context.Context, inj *fault.Injector, tf spec.TimedFault) error {
	if !sleepUntil(ctx, r.t0.Add(tf.At)) {
		return nil
	}
	var hs []*fault.Handle
	began := time.Now()
	sps, err := specs(tf, r.roles)
	if err != nil {
		return err
	}
	for _, sp := range sps {
		h, err := inj.Apply(ctx, sp, r.targets()...)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		hs = append(hs, h)
	}
	if tf.Duration == 0 || tf.Fault.Kind == "restart" {
		return nil // held until the heal after the workload
	}
	if !sleepUntil(ctx, r.t0.Add(tf.At+tf.Duration)) {
		return nil
	}
	for _, h := range hs {
		if err := h.Undo(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
	if span, limit := time.Since(began), tf.Fault.MaxSpan.D(); limit > 0 && span > limit {
		r.premiseMu.Lock()
		r.premise = append(r.premise, fmt.Sprintf("the scenario's premise did not hold: fault %s %s lasted %.1fs from apply to undo, more than its max-span %s (the host was too slow to apply and undo it in time), so this run's verdicts are not evidence about the stack",
			tf.Fault.Kind, strings.Join(tf.Fault.Targets, ","), span.Seconds(), limit))
		r.premiseMu.Unlock()
	}
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// onFault records injector events in events.jsonl and as fault windows.
func (r *runner) onFault(e fault.Event) {
	kind := history.KindFaultStart
	if e.Action == fault.Undone {
		kind = history.KindFaultEnd
	}
	attrs := map[string]string{"id": strconv.Itoa(e.ID), "fault": string(e.Kind), "took": e.Took.String()}
	if len(e.Targets) > 0 {
		attrs["targets"] = strings.Join(e.Targets, ",")
	}
	if e.Err != "" {
		attrs["error"] = e.Err
	}
	r.events.Write(history.Event{Time: e.Time, Source: history.SourceFault, Kind: kind, Detail: e.Spec + " " + e.Detail, Attrs: attrs})
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	if r.windows == nil {
		r.windows = map[int]*result.FaultWindow{}
	}
	w := r.windows[e.ID]
	if w == nil {
		w = &result.FaultWindow{ID: e.ID, Kind: string(e.Kind), Spec: e.Spec, Targets: e.Targets}
		r.windows[e.ID] = w
		r.order = append(r.order, e.ID)
	}
	if e.Action == fault.Applied {
		w.Start = e.Time
	} else {
		w.End = e.Time
	}
	if e.Err != "" {
		w.Err = e.Err
	}
	go r.progressLine(false)
}

func (r *runner) faultWindows() []result.FaultWindow {
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	out := make([]result.FaultWindow, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, *r.windows[id])
	}
	return out
}
