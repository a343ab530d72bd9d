package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// Runtime defaults for a small idle daemon (issue 10 part 4, measured in
// docs/results/witness.md); the environment overrides each of them.
const (
	// defaultGOGC: a 1 MiB minimum heap goal instead of Go's 4 MiB. The
	// witness keeps well under 1 MiB live and allocates little at idle, so
	// the extra collections cost a few milliseconds a minute.
	defaultGOGC = 25
	// releaseEvery returns the pages the heap no longer uses to the kernel
	// (debug.FreeOSMemory): the background scavenger keeps a margin above
	// the heap goal that would otherwise stay in the private memory.
	// Every 5 s: the forced collection and release cost about a
	// millisecond of CPU each (0.02 % of a core); sampled each second in
	// the footprint role, the private memory between releases grew by up
	// to 0.2 MiB with 10 s and stayed within about 0.1 MiB with 5 s.
	releaseEvery = 5 * time.Second
)

// tuneRuntime applies the defaults. One P (GOMAXPROCS=1): the witness's
// work is a few short events per second, and with one P a goroutine woken by
// a reply never makes another thread spin looking for work, which was most
// of its idle CPU.
//
// Heap profiling is off (runtime.MemProfileRate = 0): nothing reads the
// profile, and each sampled allocation site touches a page of the
// runtime's 1.4 MB bucket table, which stayed resident (about 200 KiB of
// private memory measured in this role). GODEBUG=memprofilerate=N still
// turns it on for a diagnosis.
func tuneRuntime() {
	if !strings.Contains(os.Getenv("GODEBUG"), "memprofilerate") {
		runtime.MemProfileRate = 0
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	if os.Getenv("REDISHA_WITNESS_NO_RELEASE") == "" {
		// A timer callback rather than a goroutine on a ticker: nothing
		// waits (and holds a stack) between releases.
		var release func()
		release = func() {
			debug.FreeOSMemory()
			time.AfterFunc(releaseEvery, release)
		}
		time.AfterFunc(releaseEvery, release)
	}
}

// reexecOneProc replaces the process with itself, same pid and arguments,
// with GOMAXPROCS=1 in its environment, unless GOMAXPROCS is set already.
//
// One P from the runtime's start, not from main: package initialisation
// (protobuf descriptors, Prometheus, the config parser, cobra) allocates
// with as many Ps as the machine has cores, each P caching a partly used
// span per size class, and what survives start-up stays spread over both
// sets of spans for the life of the process. In the footprint role on 2
// cores, lowering GOMAXPROCS in main (tuneRuntime) left about 0.25 MiB more
// private memory than starting with GOMAXPROCS=1 in the environment (0.1
// MiB more even when lowered in the first package initialised). The cost is
// initialising twice at start (a few milliseconds). If the exec fails
// (/proc not mounted), tuneRuntime lowers GOMAXPROCS in this image.
func reexecOneProc() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	env := append(os.Environ(), "GOMAXPROCS=1")
	_ = syscall.Exec("/proc/self/exe", os.Args, env) // returns only on failure
}
