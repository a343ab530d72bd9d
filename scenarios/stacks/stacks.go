// Package stacks holds the built-in lab stacks as data: one directory per
// stack with a stack.yaml and the config templates it names. The lab package
// reads them from FS; users may pass a directory of the same shape instead.
package stacks

import "embed"

// FS holds every built-in stack, one top-level directory each.
//
//go:embed reference redisha
var FS embed.FS
