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
	"runtime/debug"
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
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
	"github.com/redisha/redisha/scenarios/workload"
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
func Run(ctx context.Context, s *spec.Scenario, runNo int, opt Options) (*result.Result, string) {
	seed := opt.Seed + uint64(runNo-1)
	started := time.Now()
	dir := filepath.Join(opt.Out, result.RunDir(s.Name, runNo))
	res := &result.Result{Scenario: s.Name, Description: s.Description, Source: s.Source, Seed: seed, Run: runNo,
		Started: started, Machine: machine(), Version: buildVersion(), Workload: s.Workload, Expect: s.Expect}
	startLoad, loadOK := hostLoad()
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
	if endLoad, ok := hostLoad(); ok && loadOK {
		res.HostLoad = &result.HostLoad{Start: startLoad, End: endLoad}
	}
	if err != nil {
		res.Error = err.Error()
		res.Outcome, res.Reasons = result.Fold(res.Verdicts, res.Error)
	}
	r.progressLine(true)
	if werr := r.writeReport(); werr != nil && res.Error == "" {
		res.Error = "writing the report: " + werr.Error()
		res.Outcome, res.Reasons = result.Fold(res.Verdicts, res.Error)
	}
	return res, dir
}

// runner holds one run's state across its phases.
type runner struct {
	s    *spec.Scenario
	opt  Options
	seed uint64
	dir  string
	res  *result.Result
	log  *slog.Logger

	lab     *lab.Lab
	events  *history.Writer
	ops     *history.Writer
	redises []observe.Endpoint // every redis-server, for the final read
	initial string             // the quorum's master when the workload started
	roles   spec.Roles         // what role names mean on this run's stack

	phase     atomic.Value // string
	progMu    sync.Mutex
	lastPhase string
	lastLine  time.Time
	cnt       workload.Counters
	fails     atomic.Int64 // failovers seen live

	premiseMu sync.Mutex
	premise   []string // faults that overran their max-span: the run is a harness error
	t0        time.Time
	faultMu   sync.Mutex
	windows   map[int]*result.FaultWindow
	order     []int
}

// run executes the phases of one run in order; each phase records what it learned in r.res.
func (r *runner) run(ctx context.Context) (err error) {
	if err := os.MkdirAll(filepath.Join(r.dir, result.LogsDir), 0o755); err != nil {
		return err
	}
	r.phase.Store("prepare")
	st, err := r.resolveStack()
	if err != nil {
		return err
	}
	if err := r.preflight(st.stack); err != nil {
		return err
	}
	if err := r.openRecords(); err != nil {
		return err
	}
	defer r.closeRecords(&err)
	defer r.tickProgress()()

	r.setPhase("lab-up")
	if err := r.labUp(ctx, st); err != nil {
		return err
	}
	defer r.labDown(ctx, &err)
	stopObs, err := r.startObserver(ctx)
	if err != nil {
		return err
	}
	defer stopObs()
	if err := r.resolveRoles(ctx); err != nil {
		return err
	}
	if err := r.checkTargets(); err != nil {
		return err
	}
	inj := fault.NewInjector(r.log, fault.WithSeed(r.seed), fault.WithEvents(r.onFault), fault.WithExempt(r.lab.Gateway))
	defer undoAll(ctx, inj, &err)
	wcfg, closePath, err := r.workloadConfig(inj)
	if err != nil {
		return err
	}
	defer closePath()

	r.setPhase("workload")
	if err := r.runTimeline(ctx, inj, wcfg); err != nil {
		return err
	}
	r.setPhase("heal")
	hctx, hcancel := context.WithTimeout(ctx, 60*time.Second)
	uerr := inj.UndoAll(hctx)
	hcancel()
	if uerr != nil {
		return fmt.Errorf("heal: %w", uerr)
	}
	r.setPhase("converge")
	final, err := r.finalRead(ctx, wcfg)
	if err != nil {
		return err
	}
	stopObs()
	if err := writeJSON(filepath.Join(r.dir, result.FinalFile), final); err != nil {
		return fmt.Errorf("writing %s: %w", result.FinalFile, err)
	}
	r.setPhase("judge")
	if err := r.judge(final, st.known); err != nil {
		return err
	}
	// Judged, so the report shows what happened; but a fault that overran its max-span means the
	// scenario did not happen as written, and the run is a harness error.
	r.premiseMu.Lock()
	defer r.premiseMu.Unlock()
	if len(r.premise) > 0 {
		return errors.New(strings.Join(r.premise, "; "))
	}
	return nil
}

// resolvedStack is the stack a run uses, its parameters and its known findings.
type resolvedStack struct {
	stack  *lab.Stack
	params lab.Params
	known  Known
}

// resolveStack picks the stack (the --stack override, a variant or the scenario's), merges the
// parameters and loads the stack's known verdicts.
func (r *runner) resolveStack() (resolvedStack, error) {
	arg := r.opt.Stack
	if arg == "" {
		arg = r.s.Stack.Name
	}
	params := r.s.Stack.Params
	name := ""
	if v, ok := variant(arg); ok {
		name, arg = v.Name, v.Base
		params = params.Merge(v.Params)
		// The variant's promises (redisha-durable: no acknowledged write
		// lost) join the scenario's own; on a copy, since compare runs the
		// same scenario on every stack.
		s := *r.s
		s.Expect = v.Expectations(s.Expect)
		r.s, r.res.Expect = &s, s.Expect
	}
	stack, err := lab.LoadStack(arg)
	if err != nil {
		return resolvedStack{}, err
	}
	if name == "" {
		name = stack.Name
	}
	r.res.Stack = name
	dir := ""
	if st, e := os.Stat(arg); e == nil && st.IsDir() {
		dir = arg
	}
	known, err := LoadKnown(name, dir)
	if err != nil {
		return resolvedStack{}, err
	}
	return resolvedStack{stack: stack, params: lab.Params(params), known: known}, nil
}

// openRecords creates events.jsonl and history.jsonl.
func (r *runner) openRecords() (err error) {
	if r.events, err = history.Create(filepath.Join(r.dir, result.EventsFile)); err != nil {
		return err
	}
	r.ops, err = history.Create(filepath.Join(r.dir, result.HistoryFile))
	return err
}

// closeRecords closes the record files, keeping the first error in *err.
func (r *runner) closeRecords(err *error) {
	for _, w := range []*history.Writer{r.ops, r.events} {
		if w == nil {
			continue
		}
		if cerr := w.Close(); *err == nil && cerr != nil {
			*err = cerr
		}
	}
}

// labUp starts the lab and records its nodes and parameters in the result.
func (r *runner) labUp(ctx context.Context, st resolvedStack) error {
	lo := r.opt.Lab
	lo.LogDir = filepath.Join(r.dir, result.LogsDir)
	lo.NoSignalHandler = true
	lo.Logger = r.log
	l, err := lab.Up(ctx, st.stack, st.params, lo)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	r.lab = l
	params := spec.StackParams(l.Params)
	r.res.StackParams = &params
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
	return nil
}

// labDown tears the lab down, keeping the first error in *err.
func (r *runner) labDown(ctx context.Context, err *error) {
	r.setPhase("teardown")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
	defer cancel()
	if cerr := r.lab.Close(cctx); cerr != nil && *err == nil {
		*err = fmt.Errorf("lab close: %w", cerr)
	}
}

// undoAll heals every fault still applied, keeping the first error in *err.
func undoAll(ctx context.Context, inj *fault.Injector, err *error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	if uerr := inj.UndoAll(cctx); uerr != nil && *err == nil {
		*err = fmt.Errorf("undo faults: %w", uerr)
	}
}

// startObserver starts the observer before the workload, so the initial roles are on record,
// and records the quorum's initial master. The returned stop may be called more than once.
func (r *runner) startObserver(ctx context.Context) (stop func(), err error) {
	l := r.lab
	sentinels, redises := r.endpoints()
	r.redises = redises
	ocfg := observe.Config{Sentinels: sentinels, Redis: redises, Proxies: r.proxies(), Rec: &tap{w: r.events, n: &r.fails}}
	for _, p := range r.unobservedProxies() {
		r.events.Write(history.Event{Time: time.Now(), Source: history.SourceRunner, Kind: "proxy-unobserved", Node: p,
			Detail: "the harness cannot read this proxy daemon's routes"})
	}
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
	obs := observe.Start(obsCtx, ocfg)
	stop = sync.OnceFunc(func() { obs.Stop(); obsCancel() })
	r.initial, err = observe.MasterFromSentinels(ctx, sentinels, r.params().MasterName)
	if err != nil {
		stop()
		return nil, fmt.Errorf("initial master: %w", err)
	}
	r.events.Write(history.Event{Time: time.Now(), Source: history.SourceRunner, Kind: history.KindInitialMaster, Attrs: map[string]string{"addr": r.initial}})
	return stop, nil
}

// workloadConfig resolves where the clients connect (the VIP or one node, through the client
// path proxy when a fault needs it). closePath releases that proxy.
func (r *runner) workloadConfig(inj *fault.Injector) (wcfg workload.Config, closePath func(), err error) {
	l, wl, p := r.lab, r.s.Workload, r.params()
	closePath = func() {}
	addr := ""
	var sentinelAddrs []string
	switch wl.Path {
	case spec.PathVIP:
		if !l.VIP.IsValid() {
			return wcfg, closePath, errors.New("workload path vip, but the stack has no VIP")
		}
		addr = net.JoinHostPort(l.VIP.String(), strconv.Itoa(p.RedisPort))
	case spec.PathDirect:
		n := l.Node(wl.Node)
		if n == nil {
			return wcfg, closePath, fmt.Errorf("workload.node %q is not a node of stack %s", wl.Node, l.Stack.Name)
		}
		addr = net.JoinHostPort(n.IP().String(), strconv.Itoa(p.RedisPort))
	case spec.PathSentinel:
		sentinels, _ := r.endpoints()
		for _, s := range sentinels {
			sentinelAddrs = append(sentinelAddrs, s.Addr)
		}
		if len(sentinelAddrs) == 0 {
			return wcfg, closePath, fmt.Errorf("workload path sentinel, but stack %s runs no sentinel", l.Stack.Name)
		}
	}
	if r.needsClientPath() {
		cp, err := fault.NewClientPath(fault.ClientPathConfig{NetnsPath: l.Client.NetnsPath(), Upstream: addr, Seed: r.seed})
		if err != nil {
			return wcfg, closePath, err
		}
		closePath = func() { cp.Close() }
		inj.AttachClientPath(cp)
		addr = cp.Addr()
	}
	ipToNode := map[string]string{}
	for _, n := range l.Nodes {
		ipToNode[n.IP().String()] = n.Name()
	}
	wcfg = workload.Config{
		Addr: addr, Sentinels: sentinelAddrs, MasterName: p.MasterName,
		Dial: l.ClientDial, Clients: wl.Clients, Rate: wl.Rate, Duration: wl.Duration.D(),
		SetW: wl.Mix.Set, GetW: wl.Mix.Get, AddW: wl.Mix.Add, Keys: wl.Keys, Timeout: wl.Timeout.D(), Retries: wl.Retries,
		Reconnect: wl.Reconnect.D(),
		Seed:      r.seed, Prefix: "rh",
		NodeOf: func(a string) string {
			h, _, _ := net.SplitHostPort(a)
			return ipToNode[h]
		},
	}
	if ps := wl.PubSub; ps != nil {
		wcfg.Publishers, wcfg.Subscribers, wcfg.PublishRate = ps.Publishers, ps.Subscribers, ps.Rate
	}
	return wcfg, closePath, nil
}

// runTimeline runs the workload and the fault timeline together; times in the timeline count
// from the workload's start. The first fault error stops the workload.
func (r *runner) runTimeline(ctx context.Context, inj *fault.Injector, wcfg workload.Config) error {
	timeline := r.s.Timeline(r.seed)
	for _, tf := range timeline {
		r.res.Timeline = append(r.res.Timeline, tf.Record())
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
	switch {
	case werr != nil:
		return werr
	case faultErr != nil:
		return faultErr
	}
	return ctx.Err()
}

// finalRead waits for the replicas to converge and reads every key the workload wrote. A run
// that does not converge is judged as such (not a harness error).
func (r *runner) finalRead(ctx context.Context, wcfg workload.Config) (history.Final, error) {
	m, waited, cerr := observe.Converge(ctx, r.redises, r.s.ConvergeTimeout.D())
	if cerr != nil {
		if ctx.Err() != nil {
			return history.Final{}, ctx.Err()
		}
		return history.Final{Waited: waited, Reason: cerr.Error()}, nil
	}
	regs, sets := wcfg.KeyNames()
	final, err := observe.ReadFinal(ctx, m, regs, sets)
	if err != nil {
		return history.Final{}, err
	}
	final.Waited = waited
	return final, nil
}

// judge reads the records back and judges them.
func (r *runner) judge(final history.Final, known Known) error {
	if err := r.ops.Flush(); err != nil {
		return err
	}
	if err := r.events.Flush(); err != nil {
		return err
	}
	in, err := r.loadInput(final, r.initial)
	if err != nil {
		return err
	}
	Judge(r.s, in, known[r.s.Name]).Apply(r.res)
	r.res.Faults = r.faultWindows()
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// loadInput reads the records back from disk: the checkers judge exactly what the report holds.
func (r *runner) loadInput(final history.Final, initial string) (check.Input, error) {
	ops, err := history.ReadFile[history.Op](filepath.Join(r.dir, result.HistoryFile))
	if err != nil {
		return check.Input{}, err
	}
	evs, err := history.ReadFile[history.Event](filepath.Join(r.dir, result.EventsFile))
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

// params are the stack parameters the lab runs with (the recipe's ports and names under them).
func (r *runner) params() result.StackParams {
	return spec.StackParams(r.lab.Params).Merge(result.Conventions)
}

// daemonWithRole returns n's daemon playing role in the stack description ("" when none).
func (r *runner) daemonWithRole(n *lab.Node, role string) string {
	ns := r.lab.Stack.Node(n.Name())
	if ns == nil {
		return ""
	}
	return ns.DaemonWithRole(role)
}

// endpoints lists every sentinel (redis-sentinel or redisha-witness: whatever daemon plays the
// sentinel role) and every redis-server, at the ports of the stack parameters.
func (r *runner) endpoints() (sentinels, redises []observe.Endpoint) {
	p := r.params()
	for _, n := range r.lab.Nodes {
		if r.daemonWithRole(n, spec.DaemonSentinel) != "" {
			sentinels = append(sentinels, observe.Endpoint{Node: n.Name(), Addr: net.JoinHostPort(n.IP().String(), strconv.Itoa(p.SentinelPort))})
		}
		if r.daemonWithRole(n, spec.DaemonRedis) != "" {
			redises = append(redises, observe.Endpoint{Node: n.Name(), Addr: net.JoinHostPort(n.IP().String(), strconv.Itoa(p.RedisPort))})
		}
	}
	return sentinels, redises
}

// proxies lists the proxy daemons the observer can read: HAProxy through its admin socket in the
// node's root, redisha-proxy through its admin endpoint in the node's network namespace.
func (r *runner) proxies() []observe.Proxy {
	p := r.params()
	ipToNode := map[string]string{}
	for _, n := range r.lab.Nodes {
		ipToNode[n.IP().String()] = n.Name()
	}
	nodeOf := func(a string) string {
		h, _, _ := net.SplitHostPort(a)
		return ipToNode[h]
	}
	var out []observe.Proxy
	for _, n := range r.lab.Nodes {
		switch r.daemonWithRole(n, spec.DaemonProxy) {
		case observe.ProxyHAProxy:
			out = append(out, observe.Proxy{Node: n.Name(), Kind: observe.ProxyHAProxy, Socket: func() string {
				if pid := n.Pid(); pid > 0 {
					return fmt.Sprintf("/proc/%d/root%s", pid, p.HAProxySocket)
				}
				return ""
			}})
		case observe.ProxyRedisha:
			out = append(out, observe.Proxy{Node: n.Name(), Kind: observe.ProxyRedisha, Admin: p.ProxyAdmin, NodeOf: nodeOf,
				Netns: func() string {
					if n.Pid() > 0 {
						return n.NetnsPath()
					}
					return ""
				}})
		}
	}
	return out
}

// unobservedProxies names nodes whose proxy daemon the observer cannot read.
func (r *runner) unobservedProxies() []string {
	var out []string
	for _, n := range r.lab.Nodes {
		switch d := r.daemonWithRole(n, spec.DaemonProxy); d {
		case "", observe.ProxyHAProxy, observe.ProxyRedisha:
		default:
			out = append(out, n.Name()+" ("+d+")")
		}
	}
	return out
}

// writeReport writes result.json, junit.xml and index.html. A run the harness could not judge
// still gets the analysis of whatever it recorded, so its page shows what happened.
func (r *runner) writeReport() error {
	if r.res.Outcome == "" {
		r.res.Outcome = result.OutcomeError
	}
	run, err := reports.WithRecords(r.dir, r.res)
	if err != nil {
		return err
	}
	AnalyzeRecorded(run)
	if err := result.Write(r.dir, r.res); err != nil {
		return err
	}
	if err := reports.WriteJUnit(filepath.Join(r.dir, result.JUnitFile), r.res); err != nil {
		return err
	}
	return reports.RenderHTML(run)
}

func machine() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s %s/%s %d cpu", h, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
}

// hostLoad reads the 1-minute load average; false where /proc/loadavg is absent or unreadable.
func hostLoad() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}

// buildVersion is the harness's VCS revision (short, "+dirty" for a modified tree), or "" when
// the binary carries none (go run, a build outside the repository).
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && dirty {
		rev += "+dirty"
	}
	return rev
}
