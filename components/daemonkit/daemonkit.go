package daemonkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/redisha/redisha/components/confkit"
)

// Daemon describes one daemon's command line; the main fills it in and calls
// Main. C is the component's config type.
type Daemon[C any] struct {
	// Name is the binary's name ("redisha-proxy").
	Name string
	// Short is the one-line description in --help.
	Short string
	// Version is what `version` and --version print.
	Version string
	// DefaultConfig is --config's default ("" = no file unless given).
	DefaultConfig string
	// BareRuns makes the binary with no arguments at all run the daemon
	// (deprecated, with a warning), as redisha-proxy and redisha-witness
	// did; otherwise it prints help, as redisha-vip did.
	BareRuns bool
	// CheckOK is what check-config prints on success (default
	// "configuration OK"); each daemon keeps its old line for scripts.
	CheckOK string

	// Load reads the config file at path ("" when there is none) with the
	// component's defaults, and returns deprecation warnings (confkit's
	// Meta.Deprecations as strings) that daemonkit logs once each. Without
	// Validate it also validates.
	Load func(path string) (*C, []string, error)
	// Validate, if set, runs after Flags are applied to what Load returned
	// (the proxy's flags override its file, then it derives and validates).
	Validate func(cfg *C) error
	// Flags are the component's own flags (the proxy's -listen, ...); they
	// apply to run and check-config.
	Flags []Flag[C]
	// LogSettings returns the config's log level and format for
	// confkit.NewReloadableLogger; nil means info, text.
	LogSettings func(cfg *C) (level, format string)

	// Run runs the daemon until ctx is cancelled (SIGINT or SIGTERM) and
	// returns when it has stopped (drained, handed over). A non-nil error
	// exits 1.
	Run func(ctx context.Context, cfg *C, log *slog.Logger) error
	// Reload, if set, is called on SIGHUP with the file loaded again (flags
	// and Validate applied); an error keeps the running configuration and is
	// logged. It runs on daemonkit's signal goroutine, concurrently with
	// Run. Without Reload, SIGHUP keeps Go's default (the process exits), as
	// it did for redisha-vip and redisha-witness.
	Reload func(cfg *C, log *slog.Logger) error
	// Status prints the running instance's state for `status`; cfg is nil
	// when the config file could not be read (opts.Addr may still say where
	// to ask).
	Status func(ctx context.Context, cfg *C, opts StatusOptions, w io.Writer) error

	// notify is signal.Notify; tests replace it.
	notify func(c chan<- os.Signal, sig ...os.Signal)
}

// Flag is one component flag. Its value is applied to the loaded config
// (after Load, before Validate) on every load, reloads included.
type Flag[C any] struct {
	Name  string // long name, "listen"
	Usage string
	Bool  bool // takes no value
	// Deprecated, if set, is logged (once) when the flag is used.
	Deprecated string
	Apply      func(cfg *C, value string) error
}

// StatusOptions are the status subcommand's flags.
type StatusOptions struct {
	Addr string // --addr: the endpoint to ask; "" means from the config
	JSON bool   // --json: raw JSON
}

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the daemon failed, or status could not reach it
	ExitUsage   = 2 // bad command line or bad configuration
)

// usageError marks errors that exit 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// Main runs the command line of os.Args and exits.
func (d *Daemon[C]) Main() {
	os.Exit(d.Execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// invocation is one Execute's state.
type invocation[C any] struct {
	d              *Daemon[C]
	stdout, stderr io.Writer
	configPath     string
	status         StatusOptions
	warnings       []string // not yet shown
	shown          map[string]bool
	mu             sync.Mutex
	ran            bool
}

// Execute runs one command line (without the program name) and returns the
// exit code. Legacy forms are rewritten first (see normalize) with a
// deprecation warning.
func (d *Daemon[C]) Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	inv := &invocation[C]{d: d, stdout: stdout, stderr: stderr, shown: map[string]bool{}}
	newArgs, warning, err := d.normalize(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", d.Name, err)
		return ExitUsage
	}
	if warning != "" {
		inv.warnings = append(inv.warnings, warning)
	}
	root := inv.command()
	root.SetArgs(newArgs)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	err = root.Execute()
	if !inv.ran {
		inv.flushWarnings(nil) // help, --version, or a usage error
	}
	if err == nil {
		return ExitOK
	}
	for _, l := range confkit.Lines(err) {
		fmt.Fprintf(stderr, "%s: %s\n", d.Name, l)
	}
	var ue usageError
	if !inv.ran || errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailure
}

// Command is the cobra command tree without the legacy rewriting, for tests
// and documentation generators.
func (d *Daemon[C]) Command() *cobra.Command {
	return (&invocation[C]{d: d, stdout: os.Stdout, stderr: os.Stderr, shown: map[string]bool{}}).command()
}

func (inv *invocation[C]) command() *cobra.Command {
	d := inv.d
	root := &cobra.Command{
		Use:           d.Name,
		Short:         d.Short,
		Version:       d.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentFlags().StringVarP(&inv.configPath, "config", "c", d.DefaultConfig, "configuration file (YAML)")
	for _, f := range d.Flags {
		// Values are read back through the flag set at load time.
		if f.Bool {
			root.PersistentFlags().Bool(f.Name, false, f.Usage)
		} else {
			root.PersistentFlags().String(f.Name, "", f.Usage)
		}
	}
	mark := func(*cobra.Command, []string) { inv.ran = true }

	run := &cobra.Command{
		Use:    "run",
		Short:  "run the daemon until SIGTERM or SIGINT (SIGHUP reloads, where supported)",
		Args:   cobra.NoArgs,
		PreRun: mark,
		RunE:   func(cmd *cobra.Command, _ []string) error { return inv.run(cmd) },
	}
	check := &cobra.Command{
		Use:    "check-config",
		Short:  "validate the configuration (file and flags) and exit",
		Args:   cobra.NoArgs,
		PreRun: mark,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := inv.load(cmd); err != nil {
				inv.flushWarnings(nil)
				return usageError{err}
			}
			inv.flushWarnings(nil)
			msg := d.CheckOK
			if msg == "" {
				msg = "configuration OK"
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	status := &cobra.Command{
		Use:    "status",
		Short:  "print the state of the running instance",
		Args:   cobra.NoArgs,
		PreRun: mark,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if d.Status == nil {
				return fmt.Errorf("%s has no status command yet", d.Name)
			}
			cfg, _ := inv.load(cmd) // status works without a readable file (--addr)
			inv.flushWarnings(nil)
			return d.Status(cmd.Context(), cfg, inv.status, cmd.OutOrStdout())
		},
	}
	status.Flags().StringVar(&inv.status.Addr, "addr", "", "status endpoint host:port (default: from the config file)")
	status.Flags().BoolVar(&inv.status.JSON, "json", false, "print raw JSON")
	version := &cobra.Command{
		Use:    "version",
		Short:  "print the version",
		Args:   cobra.NoArgs,
		PreRun: mark,
		RunE: func(cmd *cobra.Command, _ []string) error {
			inv.flushWarnings(nil)
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", d.Name, d.Version)
			return nil
		},
	}
	root.AddCommand(run, check, status, version)
	return root
}

// load reads the file, applies the component flags the command line set,
// and validates.
func (inv *invocation[C]) load(cmd *cobra.Command) (*C, error) {
	d := inv.d
	cfg, warns, err := d.Load(inv.configPath)
	inv.addWarnings(warns...)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errors.New("daemonkit: Load returned no config")
	}
	var errs []error
	for _, f := range d.Flags {
		fl := cmd.Flags().Lookup(f.Name)
		if fl == nil || !fl.Changed {
			continue
		}
		if f.Deprecated != "" {
			inv.addWarnings(fmt.Sprintf("--%s is deprecated: %s", f.Name, f.Deprecated))
		}
		if err := f.Apply(cfg, fl.Value.String()); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", f.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if d.Validate != nil {
		if err := d.Validate(cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func (inv *invocation[C]) addWarnings(w ...string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.warnings = append(inv.warnings, w...)
}

// flushWarnings shows each warning not shown before: on the logger once there
// is one, else on stderr.
func (inv *invocation[C]) flushWarnings(log *slog.Logger) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, w := range inv.warnings {
		if inv.shown[w] {
			continue
		}
		inv.shown[w] = true
		if log != nil {
			log.Warn(w)
		} else {
			fmt.Fprintf(inv.stderr, "%s: warning: %s\n", inv.d.Name, w)
		}
	}
	inv.warnings = nil
}

func (inv *invocation[C]) logSettings(cfg *C) (string, string) {
	if inv.d.LogSettings == nil {
		return "", ""
	}
	return inv.d.LogSettings(cfg)
}

// run is the run subcommand: load, build the logger, wire the signals, Run.
func (inv *invocation[C]) run(cmd *cobra.Command) error {
	d := inv.d
	cfg, err := inv.load(cmd)
	if err != nil {
		inv.flushWarnings(nil)
		return usageError{err}
	}
	level, format := inv.logSettings(cfg)
	log, lv, err := confkit.NewReloadableLogger(level, format, inv.stderr)
	if err != nil {
		inv.flushWarnings(nil)
		return usageError{err}
	}
	inv.flushWarnings(log)

	notify := d.notify
	if notify == nil {
		notify = signal.Notify
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	// Registered before Run starts, so a signal is never lost to Go's
	// default action once the daemon runs; further SIGINT/SIGTERM while it
	// stops are ignored, as before.
	stop := make(chan os.Signal, 1)
	notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	var hup chan os.Signal
	if d.Reload != nil {
		hup = make(chan os.Signal, 1)
		notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case s := <-stop:
				log.Info("signal: stopping", "signal", s.String())
				cancel()
			case <-hup:
				f, _ := confkit.ParseFormat(format)
				inv.reload(cmd, log, lv, f)
			}
		}
	}()
	err = d.Run(ctx, cfg, log)
	close(done)
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// reload handles one SIGHUP.
func (inv *invocation[C]) reload(cmd *cobra.Command, log *slog.Logger, lv *slog.LevelVar, format string) {
	cfg, err := inv.load(cmd)
	inv.flushWarnings(log)
	if err == nil {
		nl, nf := inv.logSettings(cfg)
		var l slog.Level
		if l, err = confkit.ParseLevel(nl); err == nil {
			if a, _ := confkit.ParseFormat(nf); a != format {
				log.Warn("a log format change needs a restart; keeping the running one", "running", format, "file", nf)
			}
			if err = inv.d.Reload(cfg, log); err == nil {
				lv.Set(l)
				log.Info("configuration reloaded", "file", inv.configPath)
				return
			}
		}
	}
	for _, l := range confkit.Lines(err) {
		log.Error("reload rejected; keeping the running configuration", "err", l)
	}
}
