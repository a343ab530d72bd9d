package scenarios

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisha/redisha/reports"
	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/lab"
	"github.com/redisha/redisha/scenarios/lab/fault"
	"github.com/redisha/redisha/scenarios/observe"
	"github.com/redisha/redisha/scenarios/workload"
)

// Ports and names the runner assumes of every stack: redis-server on 6379, redis-sentinel on
// 26379, sentinels monitoring MasterName.
const (
	RedisPort    = 6379
	SentinelPort = 26379
	MasterName   = "mymaster"
)

// Options tune a run.
type Options struct {
	// Stack overrides the scenario's stack: a built-in name or a stack directory.
	Stack string
	// Seed drives every random choice; runs of a --repeat use Seed, Seed+1, ...
	Seed uint64
	// Out is the directory receiving one sub-directory per run.
	Out string
	// Progress receives live progress lines (nil: none).
	Progress io.Writer
	// Logger receives harness logs (nil: discarded).
	Logger *slog.Logger
	// Lab passes options through to lab.Up (LogDir and Name are set per run).
	Lab lab.Options
}

// RandomSeed returns a fresh seed for runs that were not given one.
func RandomSeed() uint64 {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) >> 12 // short enough to type back in
}

// Run executes one run of s and writes its report directory. It always returns a result (with
// Outcome error when the harness failed) and the directory it wrote.
func Run(ctx context.Context, s *Scenario, runNo int, opt Options) (*reports.Result, string) {
	seed := opt.Seed + uint64(runNo-1)
	started := time.Now()
	dir := filepath.Join(opt.Out, fmt.Sprintf("%s-%d", s.Name, runNo))
	res := &reports.Result{Scenario: s.Name, Description: s.Description, Source: s.Source, Seed: seed, Run: runNo,
		Started: started, Machine: machine(), Workload: toMap(s.Workload), Expect: toMap(s.Expect)}
	r := &runner{s: s, opt: opt, seed: seed, dir: dir, res: res, log: opt.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	// A run that hangs (a stuck fault, a daemon that never answers) is a harness error, not a
	// verdict: bound the whole run.
	budget := 5*time.Minute + s.Workload.Duration.D() + s.ConvergeTimeout.D()
	rctx, cancel := context.WithTimeoutCause(ctx, budget, fmt.Errorf("run exceeded its time budget of %s", budget))
	defer cancel()
	err := r.run(rctx)
	if err != nil && ctx.Err() == nil && rctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", context.Cause(rctx), err)
	}
	res.Ended = time.Now()
	if err != nil {
		res.Error = err.Error()
		res.Outcome, res.Reasons = Outcome(res.Verdicts, res.Error)
	}
	r.progressLine(true)
	if werr := r.writeReport(); werr != nil && res.Error == "" {
		res.Error = "writing the report: " + werr.Error()
		res.Outcome, res.Reasons = Outcome(res.Verdicts, res.Error)
	}
	return res, dir
}

type runner struct {
	s    *Scenario
	opt  Options
	seed uint64
	dir  string
	res  *reports.Result
	log  *slog.Logger

	lab    *lab.Lab
	events *history.Writer
	ops    *history.Writer

	phase     atomic.Value // string
	progMu    sync.Mutex
	lastPhase string
	lastLine  time.Time
	cnt       workload.Counters
	fails     atomic.Int64 // failovers seen live
	t0        time.Time
	faultMu   sync.Mutex
	windows   map[int]*reports.FaultWindow
	order     []int
}

func (r *runner) setPhase(p string) {
	r.phase.Store(p)
	if r.events != nil {
		r.events.Write(history.Event{Time: time.Now(), Source: history.SourceRunner, Kind: history.KindPhase, Detail: p})
	}
	r.progressLine(false)
}

func (r *runner) progressLine(final bool) {
	if r.opt.Progress == nil {
		return
	}
	r.progMu.Lock()
	defer r.progMu.Unlock()
	p, _ := r.phase.Load().(string)
	el := time.Since(r.res.Started).Seconds()
	line := fmt.Sprintf("[%s #%d] %-9s %5.1fs  ok %d  failed %d  indeterminate %d  failovers %d",
		r.s.Name, r.res.Run, p, el, r.cnt.OK.Load(), r.cnt.Fail.Load(), r.cnt.Indeterminate.Load(), r.fails.Load())
	if final {
		line = fmt.Sprintf("[%s #%d] %s in %.1fs: %s", r.s.Name, r.res.Run, r.res.Outcome, el, reports.Verdict(r.res))
	}
	switch {
	case isTerminal(r.opt.Progress):
		// One line, rewritten in place; the final line stays.
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(r.opt.Progress, "\r\033[K%s%s", line, end)
	case final || p != r.lastPhase || time.Since(r.lastLine) >= 10*time.Second:
		// Logs and CI: phase changes and a line every 10 s.
		fmt.Fprintln(r.opt.Progress, line)
		r.lastLine = time.Now()
	}
	r.lastPhase = p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (r *runner) run(ctx context.Context) (err error) {
	if err := os.MkdirAll(filepath.Join(r.dir, reports.LogsDir), 0o755); err != nil {
		return err
	}
	r.phase.Store("prepare")
	stackArg := r.opt.Stack
	if stackArg == "" {
		stackArg = r.s.Stack.Name
	}
	params := r.s.Stack.Params
	stackName := ""
	if v, ok := variant(stackArg); ok {
		stackName, stackArg = v.Name, v.Base
		params = params.merge(v.Params)
	}
	stack, err := lab.LoadStack(stackArg)
	if err != nil {
		return err
	}
	if stackName == "" {
		stackName = stack.Name
	}
	r.res.Stack = stackName
	stackDir := ""
	if st, e := os.Stat(stackArg); e == nil && st.IsDir() {
		stackDir = stackArg
	}
	known, err := LoadKnown(stackName, stackDir)
	if err != nil {
		return err
	}
	if r.events, err = history.Create(filepath.Join(r.dir, reports.EventsFile)); err != nil {
		return err
	}
	defer func() {
		if cerr := r.events.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if r.ops, err = history.Create(filepath.Join(r.dir, reports.HistoryFile)); err != nil {
		return err
	}
	defer func() {
		if cerr := r.ops.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()

	// Progress ticks while the run lasts.
	tick := time.NewTicker(time.Second)
	stopTick := make(chan struct{})
	defer func() { tick.Stop(); close(stopTick) }()
	go func() {
		for {
			select {
			case <-tick.C:
				r.progressLine(false)
			case <-stopTick:
				return
			}
		}
	}()

	r.setPhase("lab-up")
	lo := r.opt.Lab
	lo.LogDir = filepath.Join(r.dir, reports.LogsDir)
	lo.NoSignalHandler = true
	lo.Logger = r.log
	l, err := lab.Up(ctx, stack, labParams(params), lo)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	r.lab = l
	defer func() {
		r.setPhase("teardown")
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
		defer cancel()
		if cerr := l.Close(cctx); cerr != nil && err == nil {
			err = fmt.Errorf("lab close: %w", cerr)
		}
	}()
	r.res.StackParams = toMap(l.Params)
	r.res.StackParams["checkInterval"] = time.Duration(l.Params.CheckInterval).String()
	r.res.Nodes = map[string]string{}
	for _, n := range l.Nodes {
		r.res.Nodes[n.Name()] = n.IP().String()
	}
	if l.Client != nil {
		r.res.Nodes["client"] = l.Client.IP().String()
	}
	if l.VIP.IsValid() {
		r.res.VIP = l.VIP.String()
	}
	if err := r.checkTargets(); err != nil {
		return err
	}

	// Observer first, so the initial roles are on record before the workload.
	sentinels, redises := r.endpoints()
	ocfg := observe.Config{Sentinels: sentinels, Redis: redises, Proxies: r.proxies(), Rec: &tap{w: r.events, n: &r.fails}}
	if l.VIP.IsValid() {
		ocfg.VIPHolders = func(ctx context.Context) ([]string, error) {
			hs, err := l.VIPHolders(ctx)
			names := make([]string, 0, len(hs))
			for _, h := range hs {
				names = append(names, h.Name())
			}
			return names, err
		}
	}
	obsCtx, obsCancel := context.WithCancel(ctx)
	defer obsCancel()
	obs := observe.Start(obsCtx, ocfg)
	stopObs := sync.OnceFunc(obs.Stop)
	defer stopObs()
	initial, err := observe.MasterFromSentinels(ctx, sentinels, MasterName)
	if err != nil {
		return fmt.Errorf("initial master: %w", err)
	}
	r.events.Write(history.Event{Time: time.Now(), Source: history.SourceRunner, Kind: history.KindInitialMaster, Attrs: map[string]string{"addr": initial}})
	r.res.Faults = nil

	inj := fault.NewInjector(r.log, fault.WithSeed(r.seed), fault.WithEvents(r.onFault), fault.WithExempt(l.Gateway))
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		if uerr := inj.UndoAll(cctx); uerr != nil && err == nil {
			err = fmt.Errorf("undo faults: %w", uerr)
		}
	}()
	wl := r.s.Workload
	addr := ""
	switch wl.Path {
	case PathVIP:
		if !l.VIP.IsValid() {
			return errors.New("workload path vip, but the stack has no VIP")
		}
		addr = net.JoinHostPort(l.VIP.String(), strconv.Itoa(RedisPort))
	case PathDirect:
		n := l.Node(wl.Node)
		if n == nil {
			return fmt.Errorf("workload.node %q is not a node of stack %s", wl.Node, stack.Name)
		}
		addr = net.JoinHostPort(n.IP().String(), strconv.Itoa(RedisPort))
	}
	if r.needsClientPath() {
		cp, err := fault.NewClientPath(fault.ClientPathConfig{NetnsPath: l.Client.NetnsPath(), Upstream: addr, Seed: r.seed})
		if err != nil {
			return err
		}
		defer cp.Close()
		inj.AttachClientPath(cp)
		addr = cp.Addr()
	}
	ipToNode := map[string]string{}
	for _, n := range l.Nodes {
		ipToNode[n.IP().String()] = n.Name()
	}
	wcfg := workload.Config{
		Addr: addr, Dial: l.ClientDial, Clients: wl.Clients, Rate: wl.Rate, Duration: wl.Duration.D(),
		SetW: wl.Mix.Set, GetW: wl.Mix.Get, AddW: wl.Mix.Add, Keys: wl.Keys, Timeout: wl.Timeout.D(), Retries: wl.Retries,
		Reconnect: wl.Reconnect.D(),
		Seed:      r.seed, Prefix: "rh",
		NodeOf: func(a string) string {
			h, _, _ := net.SplitHostPort(a)
			return ipToNode[h]
		},
	}

	// Workload and fault timeline run together; times in the timeline count from workload start.
	r.setPhase("workload")
	timeline := r.s.Timeline(r.seed)
	for _, tf := range timeline {
		r.res.Timeline = append(r.res.Timeline, map[string]any{"at": tf.At.String(), "duration": tf.Duration.String(),
			"kind": tf.Fault.Kind, "targets": tf.Fault.Targets, "a": tf.Fault.A, "b": tf.Fault.B, "entry": tf.Entry, "repeat": tf.Repeat})
	}
	r.t0 = time.Now()
	r.res.WorkStart = r.t0
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var wg sync.WaitGroup
	var faultErr error
	var faultErrMu sync.Mutex
	for _, tf := range timeline {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.runFault(wctx, inj, tf); err != nil {
				faultErrMu.Lock()
				if faultErr == nil {
					faultErr = err
				}
				faultErrMu.Unlock()
				wcancel()
			}
		}()
	}
	werr := workload.Run(wctx, wcfg, r.ops, &r.cnt)
	r.res.WorkEnd = time.Now()
	wcancel()
	wg.Wait()
	if werr != nil {
		return werr
	}
	if faultErr != nil {
		return faultErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	r.setPhase("heal")
	hctx, hcancel := context.WithTimeout(ctx, 60*time.Second)
	uerr := inj.UndoAll(hctx)
	hcancel()
	if uerr != nil {
		return fmt.Errorf("heal: %w", uerr)
	}

	r.setPhase("converge")
	final := history.Final{}
	m, waited, cerr := observe.Converge(ctx, redises, r.s.ConvergeTimeout.D())
	final.Waited = waited
	if cerr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		final.Reason = cerr.Error()
	} else {
		regs, sets := wcfg.KeyNames()
		if final, err = observe.ReadFinal(ctx, m, regs, sets); err != nil {
			return err
		}
		final.Waited = waited
	}
	stopObs()
	if b, err := json.MarshalIndent(final, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(r.dir, "final.json"), b, 0o644)
	}

	r.setPhase("judge")
	if err := r.ops.Flush(); err != nil {
		return err
	}
	if err := r.events.Flush(); err != nil {
		return err
	}
	in, err := r.loadInput(final, initial)
	if err != nil {
		return err
	}
	j := Judge(r.s, in, known[r.s.Name])
	r.res.Verdicts, r.res.Summary, r.res.LostOpIDs = j.Verdicts, j.Summary, j.LostOpIDs
	r.res.Outcome, r.res.Reasons = j.Outcome, j.Reasons
	r.res.Faults = r.faultWindows()
	return nil
}

// loadInput reads the records back from disk: the checkers judge exactly what the report holds.
func (r *runner) loadInput(final history.Final, initial string) (check.Input, error) {
	ops, err := history.ReadFile[history.Op](filepath.Join(r.dir, reports.HistoryFile))
	if err != nil {
		return check.Input{}, err
	}
	evs, err := history.ReadFile[history.Event](filepath.Join(r.dir, reports.EventsFile))
	if err != nil {
		return check.Input{}, err
	}
	history.SortEvents(evs)
	in := check.Input{Ops: ops, Events: evs, Final: final, InitialMaster: initial, End: r.res.WorkEnd}
	for _, w := range r.faultWindows() {
		if in.FaultStart.IsZero() || w.Start.Before(in.FaultStart) {
			in.FaultStart = w.Start
		}
	}
	return in, nil
}

func labParams(p StackParams) lab.Params {
	return lab.Params{
		DownAfterMs:        p.DownAfterMs,
		FailoverTimeoutMs:  p.FailoverTimeoutMs,
		Quorum:             p.Quorum,
		CheckInterval:      lab.Duration(time.Duration(p.CheckIntervalMs) * time.Millisecond),
		Persistence:        p.Persistence,
		MinReplicasToWrite: p.MinReplicasToWrite,
		MinReplicasMaxLag:  p.MinReplicasMaxLag,
	}
}

func (r *runner) hasDaemon(n *lab.Node, daemon string) bool {
	spec := r.lab.Stack.Node(n.Name())
	if spec == nil {
		return false
	}
	return slices.ContainsFunc(spec.Daemons, func(d lab.DaemonSpec) bool { return d.Name == daemon })
}

func (r *runner) endpoints() (sentinels, redises []observe.Endpoint) {
	for _, n := range r.lab.Nodes {
		if r.hasDaemon(n, "redis-sentinel") {
			sentinels = append(sentinels, observe.Endpoint{Node: n.Name(), Addr: net.JoinHostPort(n.IP().String(), strconv.Itoa(SentinelPort))})
		}
		if r.hasDaemon(n, "redis-server") {
			redises = append(redises, observe.Endpoint{Node: n.Name(), Addr: net.JoinHostPort(n.IP().String(), strconv.Itoa(RedisPort))})
		}
	}
	return sentinels, redises
}

// HAProxySocket is where the runner expects each HAProxy's admin socket inside its node.
const HAProxySocket = "/run/haproxy/admin.sock"

func (r *runner) proxies() []observe.Proxy {
	var out []observe.Proxy
	for _, n := range r.lab.Nodes {
		if !r.hasDaemon(n, "haproxy") {
			continue
		}
		out = append(out, observe.Proxy{Node: n.Name(), Socket: func() string {
			if pid := n.Pid(); pid > 0 {
				return fmt.Sprintf("/proc/%d/root%s", pid, HAProxySocket)
			}
			return ""
		}})
	}
	return out
}

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

// specs turns one timeline entry into injector specs: node faults act on each target separately.
func specs(tf TimedFault) []fault.Spec {
	f := tf.Fault
	base := fault.Spec{Kind: fault.Kind(f.Kind), A: f.A, B: f.B, OneWay: f.OneWay, Daemon: f.Daemon,
		Delay: f.Latency.D(), Jitter: f.Jitter.D(), Loss: f.Loss, RateKBps: int64(f.RateKBps), Timeout: f.Timeout.D()}
	if len(f.Targets) == 0 {
		return []fault.Spec{base}
	}
	out := make([]fault.Spec, 0, len(f.Targets))
	for _, t := range f.Targets {
		s := base
		s.Node = t
		out = append(out, s)
	}
	return out
}

func (r *runner) runFault(ctx context.Context, inj *fault.Injector, tf TimedFault) error {
	if !sleepUntil(ctx, r.t0.Add(tf.At)) {
		return nil
	}
	var hs []*fault.Handle
	for _, sp := range specs(tf) {
		h, err := inj.Apply(ctx, sp, r.targets()...)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		hs = append(hs, h)
	}
	if tf.Duration == 0 || tf.Kind() == "restart" {
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
	return nil
}

// Kind is the fault kind of a timeline entry.
func (t TimedFault) Kind() string { return t.Fault.Kind }

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
		r.windows = map[int]*reports.FaultWindow{}
	}
	w := r.windows[e.ID]
	if w == nil {
		w = &reports.FaultWindow{ID: e.ID, Kind: string(e.Kind), Spec: e.Spec, Targets: e.Targets}
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

func (r *runner) faultWindows() []reports.FaultWindow {
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	out := make([]reports.FaultWindow, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, *r.windows[id])
	}
	return out
}

// tap passes events on to the file and counts failovers for the live progress display.
type tap struct {
	w    *history.Writer
	seen sync.Map
	n    *atomic.Int64
}

func (t *tap) Write(v any) {
	if e, ok := v.(history.Event); ok && e.Kind == history.KindSwitchMaster {
		if _, dup := t.seen.LoadOrStore(e.Attrs["to"], true); !dup {
			t.n.Add(1)
		}
	}
	t.w.Write(v)
}

func (r *runner) writeReport() error {
	if r.res.Outcome == "" {
		r.res.Outcome = reports.OutcomeError
	}
	if err := reports.WriteResult(r.dir, r.res); err != nil {
		return err
	}
	if err := reports.WriteJUnit(filepath.Join(r.dir, reports.JUnitFile), r.res); err != nil {
		return err
	}
	run, err := reports.LoadRun(r.dir)
	if err != nil {
		return err
	}
	return reports.RenderHTML(run)
}

func toMap(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func machine() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s %s/%s %d cpu", h, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
}
