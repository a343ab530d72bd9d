package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisha/redisha/reports"
	"github.com/redisha/redisha/scenarios"
	"github.com/redisha/redisha/scenarios/compare"
	"github.com/redisha/redisha/scenarios/lab"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

// runFunc runs one repetition of a scenario and writes its report directory: scenarios.Run, or
// a fake in tests that plan, shard and merge without labs.
type runFunc func(ctx context.Context, s *spec.Scenario, runNo int, opt scenarios.Options) (*result.Result, string)

// runScenario is the run function the commands use.
var runScenario runFunc = scenarios.Run

// DemoScenarios is what `redisha compare --demo` (make demo) runs on both built-in stacks: the
// recipe's two-master windows and a plain failover.
var DemoScenarios = []string{"old-master-returns", "master-minority", "master-crash"}

// DefaultStacks are the stacks compare puts side by side unless told otherwise.
var DefaultStacks = []string{"reference", "redisha"}

// demoTiming compresses a scenario for the demo, the same on every stack: sentinels' down-after
// 2 s, the workload and the fault timeline at 0.6 of their length, so the demo's six runs fit in
// a few minutes and every failover still happens well inside the workload.
func demoTiming(s *spec.Scenario) {
	const scale = 0.6
	sc := func(d spec.Duration) spec.Duration { return spec.Duration(float64(d) * scale) }
	s.Stack.Params.DownAfterMs = 2000
	s.Workload.Duration = sc(s.Workload.Duration)
	s.ConvergeTimeout = spec.Duration(40 * time.Second)
	for i := range s.Faults {
		f := &s.Faults[i]
		f.At, f.Duration, f.AtJitter, f.DurationJitter, f.Every = sc(f.At), sc(f.Duration), sc(f.AtJitter), sc(f.DurationJitter), sc(f.Every)
	}
}

// compareConfig is what a comparison runs.
type compareConfig struct {
	stacks    []string // as given: built-in names or stack directories
	scenarios []*spec.Scenario
	seed      uint64
	repeat    int            // runs per cell by default
	runs      map[string]int // runs per cell of named scenarios
	shard     compare.Shard
	out       string
	progress  io.Writer
	logger    *slog.Logger
}

// stackLabel is the name a stack argument's results carry (result.Stack): a variant's name, or
// the name in the stack's stack.yaml.
func stackLabel(arg string) (string, error) {
	for _, v := range scenarios.Variants {
		if v.Name == arg {
			return v.Name, nil
		}
	}
	st, err := lab.LoadStack(arg)
	if err != nil {
		return "", err
	}
	return st.Name, nil
}

// labels resolves every stack argument to its name; two arguments naming the same stack are an
// error (their runs would be indistinguishable).
func labels(args []string) (names []string, argOf map[string]string, err error) {
	argOf = map[string]string{}
	for _, a := range args {
		n, err := stackLabel(a)
		if err != nil {
			return nil, nil, err
		}
		if prev, dup := argOf[n]; dup {
			return nil, nil, fmt.Errorf("stacks %s and %s are both named %q", prev, a, n)
		}
		argOf[n] = a
		names = append(names, n)
	}
	return names, argOf, nil
}

// runPlanned runs the planned runs in order and returns their results, linked relative to out.
func runPlanned(ctx context.Context, plan []compare.Planned, byName map[string]*spec.Scenario, argOf map[string]string,
	seed uint64, out string, stackDirs bool, progress io.Writer, logger *slog.Logger) []compare.Run {
	var runs []compare.Run
	for _, p := range plan {
		if ctx.Err() != nil {
			break
		}
		opt := scenarios.Options{Stack: argOf[p.Stack], Seed: seed, Out: out, Progress: progress, Logger: logger}
		if stackDirs {
			opt.Out = filepath.Join(out, compare.StackDir(p.Stack))
		}
		res, dir := runScenario(ctx, byName[p.Scenario], p.Run, opt)
		if res.Stack == "" {
			// The harness failed before it resolved the stack: record which one it was.
			res.Stack = p.Stack
			_ = result.Write(dir, res)
		}
		for _, reason := range res.Reasons {
			fmt.Fprintf(progress, "    %s\n", reason)
		}
		runs = append(runs, compare.Run{Result: res, Link: relLink(out, dir)})
	}
	return runs
}

// relLink is the link from a page in dir to the report of the run in runDir.
func relLink(dir, runDir string) string {
	a, err1 := filepath.Abs(dir)
	b, err2 := filepath.Abs(runDir)
	if rel, err := filepath.Rel(a, b); err1 == nil && err2 == nil && err == nil {
		return filepath.ToSlash(filepath.Join(rel, result.HTMLFile))
	}
	return filepath.ToSlash(filepath.Join(runDir, result.HTMLFile))
}

// executeCompare runs a comparison (or its shard) and writes compare.json, compare.md,
// compare.html and junit.xml into cfg.out.
func executeCompare(ctx context.Context, cfg compareConfig) (*compare.Document, []compare.Run, error) {
	names, argOf, err := labels(cfg.stacks)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*spec.Scenario{}
	var scNames []string
	for _, s := range cfg.scenarios {
		if _, dup := byName[s.Name]; !dup {
			scNames = append(scNames, s.Name)
		}
		byName[s.Name] = s
	}
	whole := compare.Plan(names, scNames, cfg.seed, cfg.repeat, cfg.runs)
	plan := cfg.shard.Of(whole)
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return nil, nil, err
	}
	var planned []compare.PlannedRun
	for _, p := range plan {
		planned = append(planned, compare.PlannedRun{Planned: p, Dir: filepath.ToSlash(filepath.Join(compare.StackDir(p.Stack), result.RunDir(p.Scenario, p.Run)))})
	}
	fmt.Fprintf(cfg.progress, "redisha: compare %s: %d run(s) (shard %s), seed %d, reports in %s\n",
		strings.Join(names, " vs "), len(plan), cfg.shard, cfg.seed, cfg.out)
	runs := runPlanned(ctx, plan, byName, argOf, cfg.seed, cfg.out, true, cfg.progress, cfg.logger)
	// A shard misses only its own runs; the whole plan is recorded for the merge.
	doc := compare.NewDocument(time.Now(), names, []string{cfg.shard.String()}, planned, nil, runs)
	doc.Whole = whole
	return &doc, runs, writeComparison(cfg.out, &doc, runs)
}

// writeComparison writes compare.json, compare.md, compare.html and junit.xml into dir.
func writeComparison(dir string, doc *compare.Document, runs []compare.Run) error {
	if err := reports.WriteCompareJSON(filepath.Join(dir, compare.File), doc); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "compare.md"))
	if err != nil {
		return err
	}
	if err := reports.WriteCompareMarkdown(f, doc); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := reports.WriteCompareHTML(filepath.Join(dir, "compare.html"), doc); err != nil {
		return err
	}
	var results []*result.Result
	for _, r := range runs {
		results = append(results, r.Result)
	}
	return reports.WriteJUnit(filepath.Join(dir, result.JUnitFile), results...)
}

// comparisonExit prints the tables and the page's path and returns the exit status: as for
// run, and 2 when planned runs are missing (an incomplete comparison).
func comparisonExit(ctx context.Context, w io.Writer, dir string, doc *compare.Document, runs []compare.Run) error {
	fmt.Fprintln(w)
	if err := reports.WriteCompareTable(w, doc); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ncompare: %s\n", filepath.Join(dir, "compare.html"))
	code := result.ExitCode(compare.Outcomes(runs)...)
	switch {
	case ctx.Err() != nil:
		return &exitError{code: 2, msg: "interrupted"}
	case len(doc.Missing) > 0:
		return &exitError{code: 2, msg: fmt.Sprintf("%d planned run(s) have no result", len(doc.Missing))}
	case code != 0:
		return &exitError{code: code}
	}
	return nil
}

// scenarioArgs resolves --all, --demo and the named scenarios.
func scenarioArgs(args []string, all bool, demo []string) ([]*spec.Scenario, error) {
	var list []*spec.Scenario
	if all {
		cat, err := scenarios.Catalog()
		if err != nil {
			return nil, err
		}
		list = cat
	}
	for _, a := range append(slices.Clone(demo), args...) {
		s, err := scenarios.Load(a)
		if err != nil {
			return nil, err
		}
		list = append(list, s)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("name at least one scenario (redisha list), or --demo or --all")
	}
	return list, nil
}

// shardFlag parses --shard and insists on --seed with it: every shard must plan the same seeds.
func shardFlag(cmd *cobra.Command, s string) (compare.Shard, error) {
	if s == "" {
		return compare.All, nil
	}
	sh, err := compare.ParseShard(s)
	if err != nil {
		return sh, err
	}
	if !cmd.Flags().Changed("seed") {
		return sh, fmt.Errorf("--shard needs --seed: every shard must plan the same seeds")
	}
	return sh, nil
}

func newCompareCmd() *cobra.Command {
	var (
		stacks  []string
		repeat  int
		runs    map[string]int
		seed    uint64
		out     string
		shard   string
		demo    bool
		all     bool
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "compare [--all | --demo | NAME|FILE...]",
		Short: "Run scenarios on several stacks with the same seeds and compare them side by side",
		Long: `Runs every scenario on every stack (--stacks: built-in names or stack
directories) with the same seeds, so the same fault timelines, and prints one
side-by-side table per scenario: verdict counts (a known finding with the
writes it lost), failovers (false ones flagged), write unavailability (median,
p90, max), acknowledged writes lost, split-brain writes, time two nodes
reported master, time the proxies routed to two masters, time the VIP was on
two nodes, VIP moves. A figure no run could observe reads "not measured".

Writes into --out: compare.md, compare.json (every figure per stack, scenario
and run), compare.html (self-contained; every run a dot linking to its report),
junit.xml, and STACK/SCENARIO-N/ per run.

--shard i/n runs only the i-th of n deterministic parts of the (stack,
scenario, seed) runs (the same on every machine given the same arguments, in
any order; --seed required); 'redisha report --merge' joins the shards.

Exit status as for run; 2 also when planned runs have no result.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var demoList []string
			if demo {
				demoList = DemoScenarios
			}
			list, err := scenarioArgs(args, all, demoList)
			if err != nil {
				return err
			}
			if demo {
				for _, s := range list {
					demoTiming(s)
				}
			}
			if repeat < 1 {
				return fmt.Errorf("--repeat must be at least 1")
			}
			for n, r := range runs {
				if r < 1 {
					return fmt.Errorf("--runs %s=%d: at least 1", n, r)
				}
				if !slices.ContainsFunc(list, func(s *spec.Scenario) bool { return s.Name == n }) {
					return fmt.Errorf("--runs %s: not among the scenarios to run", n)
				}
			}
			sh, err := shardFlag(cmd, shard)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("seed") {
				seed = scenarios.RandomSeed()
			}
			if out == "" {
				out = filepath.Join("out", "compare-"+time.Now().Format("20060102-150405"))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := slog.New(slog.DiscardHandler)
			if verbose {
				logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			cfg := compareConfig{stacks: stacks, scenarios: list, seed: seed, repeat: repeat, runs: runs, shard: sh, out: out,
				progress: cmd.ErrOrStderr(), logger: logger}
			doc, done, err := executeCompare(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nseed %d", seed)
			return comparisonExit(ctx, cmd.OutOrStdout(), out, doc, done)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&stacks, "stacks", DefaultStacks, "stacks to compare: built-in names or stack directories, comma-separated")
	f.IntVar(&repeat, "repeat", 1, "runs per scenario and stack (seeds seed, seed+1, ...)")
	f.StringToIntVar(&runs, "runs", nil, "runs for named scenarios instead of --repeat, e.g. master-crash=3,old-master-returns=3")
	f.Uint64Var(&seed, "seed", 0, "seed of every random choice (default: random, printed; required with --shard)")
	f.StringVar(&out, "out", "", "directory for the comparison and the runs' reports (default out/compare-<date-time>)")
	f.StringVar(&shard, "shard", "", "run only part i of n of the runs, e.g. 2/4 (merge with 'redisha report --merge')")
	f.BoolVar(&demo, "demo", false, "make demo: "+strings.Join(DemoScenarios, ", ")+" with shortened timings (down-after 2 s, 0.6x timeline)")
	f.BoolVar(&all, "all", false, "every scenario of the built-in catalog")
	f.BoolVarP(&verbose, "verbose", "v", false, "log the harness's steps to stderr")
	return cmd
}

// mergeSource is one directory given to report --merge.
type mergeSource struct {
	stacks  []string
	shards  []string
	planned []compare.PlannedRun // relative to the merge's output
	whole   []compare.Planned
	runs    []compare.Run
}

// loadMergeSource reads a shard's output: its compare.json and the runs it planned, or, without
// one (a run's output), every result.json up to two levels below dir.
func loadMergeSource(dir, out string) (mergeSource, error) {
	var src mergeSource
	load := func(runDir string) error {
		run, err := reports.LoadRun(runDir)
		if err != nil {
			return err
		}
		if run.Result.Analysis == nil {
			scenarios.AnalyzeRecorded(run) // results written before the analysis existed
		}
		src.runs = append(src.runs, compare.Run{Result: run.Result, Link: relLink(out, runDir)})
		return nil
	}
	if doc, err := reports.ReadCompareJSON(filepath.Join(dir, compare.File)); err == nil {
		src.stacks, src.shards, src.whole = doc.Stacks, doc.Shards, doc.Whole
		for _, p := range doc.Planned {
			runDir := filepath.Join(dir, filepath.FromSlash(p.Dir))
			rel := p
			if r, err := filepath.Rel(out, runDir); err == nil {
				rel.Dir = filepath.ToSlash(r)
			}
			src.planned = append(src.planned, rel)
			if _, err := os.Stat(filepath.Join(runDir, result.ResultFile)); err != nil {
				continue // missing: the document says so
			}
			if err := load(runDir); err != nil {
				return src, err
			}
		}
		return src, nil
	} else if !os.IsNotExist(err) {
		return src, err
	}
	for _, pattern := range []string{"*", filepath.Join("*", "*")} {
		m, _ := filepath.Glob(filepath.Join(dir, pattern, result.ResultFile))
		slices.Sort(m)
		for _, p := range m {
			if err := load(filepath.Dir(p)); err != nil {
				return src, err
			}
		}
	}
	if len(src.runs) == 0 {
		return src, fmt.Errorf("%s: no %s and no %s one or two levels below", dir, compare.File, result.ResultFile)
	}
	return src, nil
}

// mergeComparison joins the outputs of shards (or of separate compare and run invocations) into
// one comparison written to out.
func mergeComparison(dirs []string, out string) (*compare.Document, []compare.Run, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, nil, err
	}
	var stacks, shards []string
	var planned []compare.PlannedRun
	var whole []compare.Planned
	var runs []compare.Run
	for _, d := range dirs {
		src, err := loadMergeSource(d, out)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range src.stacks {
			if !slices.Contains(stacks, s) {
				stacks = append(stacks, s)
			}
		}
		shards = append(shards, src.shards...)
		planned = append(planned, src.planned...)
		whole = append(whole, src.whole...)
		runs = append(runs, src.runs...)
	}
	if dup := compare.Duplicates(runs); len(dup) > 0 {
		return nil, nil, fmt.Errorf("the directories overlap; runs found more than once: %s", strings.Join(dup, "; "))
	}
	slices.Sort(shards)
	compare.SortPlanned(whole)
	doc := compare.NewDocument(time.Now(), stacks, shards, planned, slices.Compact(whole), runs)
	return &doc, runs, writeComparison(out, &doc, runs)
}
