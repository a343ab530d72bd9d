package daemonkit

import "runtime/debug"

// BuildVersion is the module version the running binary was built from, or
// "(devel)" for a build from a work tree; the daemons report it in `version`
// and in their status.
func BuildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
