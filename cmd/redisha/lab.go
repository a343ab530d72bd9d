package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisha/redisha/scenarios/lab"
)

// newLabCmd is `redisha lab`: bring a stack up by hand, tear it down, clean
// leftovers.
func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Bring a lab (a stack of real daemons in containers) up or down",
	}
	cmd.AddCommand(newLabUpCmd(), newLabDownCmd(), newLabGCCmd(), newLabStatusCmd())
	return cmd
}

func newLabUpCmd() *cobra.Command {
	var (
		stackName string
		name      string
		logDir    string
		wait      bool
		params    lab.Params
		checkInt  time.Duration
		verbose   bool
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring a stack up and print its nodes and addresses",
		Long: `Brings the stack up on a fresh internal Docker network and waits until it
is ready. Without --wait the lab stays up after the command returns; remove it
with 'redisha lab down'. With --wait it stays in the foreground, streams node
logs to --log-dir, and tears everything down on Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stack, err := lab.LoadStack(stackName)
			if err != nil {
				return err
			}
			params.CheckInterval = lab.Duration(checkInt)
			ctx := cmd.Context()
			if !wait {
				// Startup may still be cut short by Ctrl-C; Up cleans up then.
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			l, err := lab.Up(ctx, stack, params, lab.Options{Name: name, LogDir: logDir, Detach: !wait, Logger: logger})
			if err != nil {
				return err
			}
			printLab(cmd.OutOrStdout(), l)
			if !wait {
				fmt.Fprintf(cmd.OutOrStdout(), "lab %s is up (%v); remove it with: redisha lab down %s\n", l.Name, l.UpTime.Round(time.Millisecond), l.Name)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s is up (%v); logs in %s; Ctrl-C tears it down\n", l.Name, l.UpTime.Round(time.Millisecond), l.LogDir)
			<-cmd.Context().Done() // the lab's own signal handler closes it and exits
			return l.Close(context.Background())
		},
	}
	f := cmd.Flags()
	f.StringVar(&stackName, "stack", "reference", "built-in stack name ("+strings.Join(lab.BuiltinStacks(), ", ")+") or a stack directory")
	f.StringVar(&name, "name", "", "lab name (default rhl-<random>)")
	f.StringVar(&logDir, "log-dir", "", "directory for node logs (default under $TMPDIR/redisha-labs)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log each start-up phase")
	f.BoolVar(&wait, "wait", false, "stay in the foreground and tear down on Ctrl-C")
	f.IntVar(&params.DownAfterMs, "down-after-ms", 0, "sentinel down-after-milliseconds (default: the stack's)")
	f.IntVar(&params.FailoverTimeoutMs, "failover-timeout-ms", 0, "sentinel failover-timeout (default: the stack's)")
	f.IntVar(&params.Quorum, "quorum", 0, "sentinel quorum (default: the stack's)")
	f.DurationVar(&checkInt, "check-interval", 0, "HAProxy health check interval (default: the stack's)")
	f.StringVar(&params.Persistence, "persistence", "", "none, rdb, aof or aof-always (default: the stack's)")
	f.IntVar(&params.MinReplicasToWrite, "min-replicas-to-write", 0, "redis min-replicas-to-write (default: the stack's)")
	return cmd
}

// printLab prints the node table; the VIP gets a line of its own, labelled vip.
func printLab(w io.Writer, l *lab.Lab) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tADDRESS\tCONTAINER")
	for _, n := range l.Nodes {
		id := n.ContainerID()
		if len(id) > 12 {
			id = id[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name(), n.Role(), n.IP(), id)
	}
	if l.Client != nil {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", "client", "client", l.Client.IP(), "netns "+l.Client.NetnsPath())
	}
	if l.VIP.IsValid() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", "vip", "vip", l.VIP, "")
	}
	tw.Flush()
}

func newLabDownCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "down [NAME]",
		Short: "Tear a lab down (the only one when NAME is omitted)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			} else {
				states, err := lab.ListStates()
				if err != nil {
					return err
				}
				switch len(states) {
				case 0:
					return fmt.Errorf("lab down: no lab is up (see 'redisha lab status'; 'redisha lab gc' removes leftovers)")
				case 1:
					name = states[0].Name
				default:
					var names []string
					for _, s := range states {
						names = append(names, s.Name)
					}
					return fmt.Errorf("lab down: several labs are up, name one: %s", strings.Join(names, " "))
				}
			}
			if err := lab.Remove(cmd.Context(), name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s removed\n", name)
			return nil
		},
	}
}

func newLabGCCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove leftovers of labs: containers, networks, veths, netns, iptables accept rules, nft tables",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := lab.GC(cmd.Context(), lab.GCOptions{Force: force})
			out := cmd.OutOrStdout()
			for _, n := range rep.Labs {
				fmt.Fprintf(out, "removed lab %s\n", n)
			}
			for _, h := range rep.Host {
				fmt.Fprintf(out, "removed %s\n", h)
			}
			for _, n := range rep.Skipped {
				fmt.Fprintf(out, "kept lab %s: its process still runs (use --force)\n", n)
			}
			if len(rep.Labs)+len(rep.Host)+len(rep.Skipped) == 0 && err == nil {
				fmt.Fprintln(out, "nothing to remove")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "also remove labs whose owning process still runs")
	return cmd
}

func newLabStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List the labs on this machine and their nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			states, err := lab.ListStates()
			if err != nil {
				return err
			}
			for _, st := range states {
				fmt.Fprintf(out, "lab %s  stack %s  subnet %s  created %s\n", st.Name, st.Stack, st.Subnet, st.Created.Format(time.RFC3339))
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "  NODE\tROLE\tADDRESS")
				for _, n := range st.Nodes {
					fmt.Fprintf(tw, "  %s\t%s\t%s\n", n.Name, n.Role, n.IP)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", "client", "client", st.Client.IP)
				if st.VIP.IsValid() {
					fmt.Fprintf(tw, "  %s\t%s\t%s\n", "vip", "vip", st.VIP)
				}
				tw.Flush()
			}
			labs, host, err := lab.Leftovers(cmd.Context())
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for _, st := range states {
				known[st.Name] = true
			}
			for _, n := range labs {
				if !known[n] {
					fmt.Fprintf(out, "leftover lab %s (no state file; 'redisha lab gc' removes it)\n", n)
				}
			}
			if len(states) == 0 && len(labs) == 0 {
				fmt.Fprintln(out, "no labs")
			}
			_ = host
			return nil
		},
	}
}
