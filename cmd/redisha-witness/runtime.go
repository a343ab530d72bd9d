package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
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
	// Every 10 s: the forced collection and release cost about a
	// millisecond of CPU each (0.01 % of a core), and the benchmark's
	// private memory between releases grew by up to the heap's free pages.
	releaseEvery = 10 * time.Second
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
		go func() {
			for range time.Tick(releaseEvery) {
				debug.FreeOSMemory()
			}
		}()
	}
}
