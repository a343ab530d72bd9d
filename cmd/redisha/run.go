package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisha/redisha/reports"
	"github.com/redisha/redisha/scenarios"
	"github.com/redisha/redisha/scenarios/compare"
	"github.com/redisha/redisha/scenarios/lab"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

func newListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the built-in scenarios",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := scenarios.Catalog()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFAULTS\tEXPECTS\tDESCRIPTION")
			for _, s := range all {
				var kinds []string
				for _, f := range s.Faults {
					kinds = append(kinds, f.Kind)
				}
				exp := "failover: measured"
				if s.Expect.Failover != nil {
					exp = fmt.Sprintf("%d failover(s)", *s.Expect.Failover)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, strings.Join(kinds, ","), exp, firstSentence(s.Description))
			}
			fmt.Fprintln(tw, "\nSTACK\tBASE\t\tDESCRIPTION")
			for _, n := range lab.BuiltinStacks() {
				desc := ""
				if st, err := lab.LoadStack(n); err == nil {
					desc = st.Description
				}
				fmt.Fprintf(tw, "%s\t-\t\t%s\n", n, desc)
			}
			for _, v := range scenarios.Variants {
				fmt.Fprintf(tw, "%s\t%s\t\t%s\n", v.Name, v.Base, v.Description)
			}
			return tw.Flush()
		},
	}
}

func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

func newRunCmd() *cobra.Command {
	var (
		stack   string
		repeat  int
		seed    uint64
		out     string
		demo    bool
		all     bool
		verbose bool
		shard   string
	)
	cmd := &cobra.Command{
		Use:   "run NAME|FILE...",
		Short: "Run scenarios against real containers and judge them",
		Long: `Runs each scenario (a built-in name from 'redisha list' or a YAML file) against
a fresh lab of its stack, records every client operation and event, and judges
the outcome. One report directory per run under --out: result.json,
history.jsonl, events.jsonl, junit.xml, logs/ and index.html.

Exit status: 0 when every verdict matches its expectation (a stack's known
findings count as expected), 1 on a regression or an unexpected pass, 2 on a
harness or infrastructure error (Docker, time-out, not converged).

--shard i/n runs only the i-th of n deterministic parts of the (stack,
scenario, seed) runs (--seed required); 'redisha report --merge' joins them.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sh, err := shardFlag(cmd, shard)
			if err != nil {
				return err
			}
			var list []*spec.Scenario
			switch {
			case all:
				cat, err := scenarios.Catalog()
				if err != nil {
					return err
				}
				list = cat
			case demo:
				for _, n := range scenarios.DemoScenarios {
					s, err := scenarios.Load(n)
					if err != nil {
						return err
					}
					list = append(list, s)
				}
			}
			for _, a := range args {
				s, err := scenarios.Load(a)
				if err != nil {
					return err
				}
				list = append(list, s)
			}
			if len(list) == 0 {
				return fmt.Errorf("name at least one scenario (redisha list), or --demo or --all")
			}
			if repeat < 1 {
				return fmt.Errorf("--repeat must be at least 1")
			}
			if !cmd.Flags().Changed("seed") {
				seed = scenarios.RandomSeed()
			}
			if out == "" {
				out = filepath.Join("out", time.Now().Format("20060102-150405"))
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := slog.New(slog.DiscardHandler)
			if verbose {
				logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			plan, byName, argOf, err := runPlan(list, stack, seed, repeat, sh)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "redisha: %d scenario(s) x %d, seed %d, reports in %s\n", len(list), repeat, seed, out)
			if sh != compare.All {
				fmt.Fprintf(cmd.ErrOrStderr(), "redisha: shard %s: %d run(s)\n", sh, len(plan))
			}
			var results []*result.Result
			var outcomes []result.Outcome
			for _, r := range runPlanned(ctx, plan, byName, argOf, seed, out, false, cmd.ErrOrStderr(), logger) {
				results = append(results, r.Result)
				outcomes = append(outcomes, r.Result.Outcome)
			}
			if err := writeAggregate(out, results); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w)
			if err := reports.WriteTable(w, results); err != nil {
				return err
			}
			fmt.Fprintf(w, "\nseed %d; report: %s\n", seed, filepath.Join(out, result.HTMLFile))
			code := result.ExitCode(outcomes...)
			if ctx.Err() != nil {
				return &exitError{code: 2, msg: "interrupted"}
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&stack, "stack", "", "stack to run against: a built-in name or a directory with stack.yaml (default: the scenario's)")
	f.IntVar(&repeat, "repeat", 1, "run each scenario N times (seeds seed, seed+1, ...)")
	f.Uint64Var(&seed, "seed", 0, "seed of every random choice (default: random, printed)")
	f.StringVar(&out, "out", "", "directory for the reports (default out/<date-time>)")
	f.BoolVar(&demo, "demo", false, "run the short demo subset: "+strings.Join(scenarios.DemoScenarios, ", "))
	f.BoolVar(&all, "all", false, "run the whole built-in catalog")
	f.BoolVarP(&verbose, "verbose", "v", false, "log the harness's steps to stderr")
	f.StringVar(&shard, "shard", "", "run only part i of n of the runs, e.g. 2/4 (merge with 'redisha report --merge')")
	return cmd
}

// runPlan plans run's runs: each scenario on --stack or its own stack, repetitions 1..repeat,
// in the order given (a shard keeps that order for the runs it holds).
func runPlan(list []*spec.Scenario, stack string, seed uint64, repeat int, sh compare.Shard) ([]compare.Planned, map[string]*spec.Scenario, map[string]string, error) {
	byName := map[string]*spec.Scenario{}
	argOf := map[string]string{}
	var plan []compare.Planned
	for _, s := range list {
		arg := stack
		if arg == "" {
			arg = s.Stack.Name
		}
		name, err := stackLabel(arg)
		if err != nil {
			return nil, nil, nil, err
		}
		if prev, ok := argOf[name]; ok && prev != arg {
			return nil, nil, nil, fmt.Errorf("stacks %s and %s are both named %q", prev, arg, name)
		}
		argOf[name] = arg
		byName[s.Name] = s
		for i := 1; i <= repeat; i++ {
			plan = append(plan, compare.Planned{Cell: result.Cell{Stack: name, Scenario: s.Name, Seed: seed + uint64(i-1)}, Run: i})
		}
	}
	if sh == compare.All {
		return plan, byName, argOf, nil
	}
	keep := map[compare.Planned]bool{}
	for _, p := range sh.Of(plan) {
		keep[p] = true
	}
	var out []compare.Planned
	for _, p := range plan {
		if keep[p] {
			out = append(out, p)
			delete(keep, p) // a scenario named twice runs once per shard plan
		}
	}
	return out, byName, argOf, nil
}

// writeAggregate writes DIR/index.html (a table linking every run) and DIR/junit.xml.
func writeAggregate(dir string, results []*result.Result) error {
	if err := reports.WriteJUnit(filepath.Join(dir, result.JUnitFile), results...); err != nil {
		return err
	}
	var links []string
	for _, r := range results {
		links = append(links, result.RunDir(r.Scenario, r.Run)+"/"+result.HTMLFile)
	}
	return reports.WriteIndex(filepath.Join(dir, result.HTMLFile), results, links)
}

func newReportCmd() *cobra.Command {
	var (
		md    bool
		merge bool
		out   string
	)
	cmd := &cobra.Command{
		Use:   "report DIR... | report --merge [--out DIR] DIR...",
		Short: "Re-render run reports and print one table over them",
		Long: `Re-renders index.html of every run directory given (or found one level below a
directory given), prints a table over all of them, and writes an aggregate
index.html and junit.xml into each parent directory given. Exit status as for run.

--merge joins the outputs of 'compare' or 'run' shards (or of any separate
invocations) into one comparison in --out: compare.md, compare.json,
compare.html (linking every run's report where it is) and junit.xml. A run
found twice is an error; a run a shard planned but has no result makes the
comparison incomplete (exit 2).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if merge {
				if out == "" {
					out = filepath.Join("out", "merged-"+time.Now().Format("20060102-150405"))
				}
				doc, runs, err := mergeComparison(args, out)
				if err != nil {
					return err
				}
				return comparisonExit(cmd.Context(), cmd.OutOrStdout(), out, doc, runs)
			}
			var results []*result.Result
			var outcomes []result.Outcome
			for _, a := range args {
				dirs, parent := runDirs(a)
				if len(dirs) == 0 {
					return fmt.Errorf("%s: no %s here or one level below", a, result.ResultFile)
				}
				var group []*result.Result
				var links []string
				for _, d := range dirs {
					run, err := reports.LoadRun(d)
					if err != nil {
						return err
					}
					scenarios.AnalyzeRecorded(run)
					if err := reports.RenderHTML(run); err != nil {
						return err
					}
					group = append(group, run.Result)
					outcomes = append(outcomes, run.Result.Outcome)
					links = append(links, filepath.Join(filepath.Base(d), result.HTMLFile))
				}
				if parent {
					if err := reports.WriteJUnit(filepath.Join(a, result.JUnitFile), group...); err != nil {
						return err
					}
					if err := reports.WriteIndex(filepath.Join(a, result.HTMLFile), group, links); err != nil {
						return err
					}
				}
				results = append(results, group...)
			}
			w := cmd.OutOrStdout()
			var err error
			if md {
				err = reports.WriteMarkdown(w, results)
			} else {
				err = reports.WriteTable(w, results)
			}
			if err != nil {
				return err
			}
			if code := result.ExitCode(outcomes...); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&md, "markdown", false, "print the table in Markdown")
	cmd.Flags().BoolVar(&merge, "merge", false, "join shards' outputs into one comparison (compare.md, compare.json, compare.html)")
	cmd.Flags().StringVar(&out, "out", "", "with --merge: where to write the comparison (default out/merged-<date-time>)")
	return cmd
}

// runDirs returns dir itself when it holds a result, else its sub-directories that do.
func runDirs(dir string) (dirs []string, parent bool) {
	if _, err := os.Stat(filepath.Join(dir, result.ResultFile)); err == nil {
		return []string{dir}, false
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, false
	}
	for _, e := range ents {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), result.ResultFile)); err == nil {
				dirs = append(dirs, filepath.Join(dir, e.Name()))
			}
		}
	}
	return dirs, true
}
