// Command redisha is the chaos and simulation harness: it brings up labs of
// real Redis, sentinel, HAProxy and keepalived containers and runs scenarios
// against them.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	root := &cobra.Command{
		Use:           "redisha",
		Short:         "Prove that a highly available Redis setup keeps its promises",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newLabCmd(), newListCmd(), newRunCmd(), newCompareCmd(), newReportCmd(), newSimCmd())
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "redisha:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "redisha:", err)
		// Bad usage and harness problems are infrastructure errors, not verdicts.
		os.Exit(2)
	}
}
