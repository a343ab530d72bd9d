// Command redisha is the chaos and simulation harness: it brings up labs of
// real Redis, sentinel, HAProxy and keepalived containers and runs scenarios
// against them.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "redisha",
		Short:         "Prove that a highly available Redis setup keeps its promises",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newLabCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "redisha:", err)
		os.Exit(1)
	}
}
