// Package witness is a forwarding shim for code that still imports the
// witness core by its old path (sim/proxysim/cluster.go). New code imports
// components/witness/core, driver or daemon; remove this package once no
// importer is left.
//
// Deprecated: use github.com/redisha/redisha/components/witness/core.
package witness

import "github.com/redisha/redisha/components/witness/core"

// ActionKind is core.ActionKind.
type ActionKind = core.ActionKind

// Action kinds, as in core.
const (
	ActPing  = core.ActPing
	ActInfo  = core.ActInfo
	ActHello = core.ActHello
	ActAsk   = core.ActAsk
)

// Hello is core.Hello.
type Hello = core.Hello

// HelloChannel is core.HelloChannel.
const HelloChannel = core.HelloChannel

// ParseHello is core.ParseHello.
func ParseHello(s string) (Hello, error) { return core.ParseHello(s) }
