package lab

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Open (non-detached) labs, torn down on SIGINT/SIGTERM before the process
// dies with the same signal.
var (
	openMu   sync.Mutex
	openLabs = map[*Lab]bool{}
	sigCh    chan os.Signal
)

func registerLab(l *Lab) {
	openMu.Lock()
	defer openMu.Unlock()
	openLabs[l] = true
	if sigCh == nil {
		sigCh = make(chan os.Signal, 1)
		signal.Notify(sigCh, os.Interrupt, syscall.SIGTERM)
		go onSignal(sigCh)
	}
}

func unregisterLab(l *Lab) {
	openMu.Lock()
	defer openMu.Unlock()
	delete(openLabs, l)
}

func onSignal(ch chan os.Signal) {
	sig := <-ch
	openMu.Lock()
	labs := make([]*Lab, 0, len(openLabs))
	for l := range openLabs {
		labs = append(labs, l)
	}
	openMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.log.Warn("signal: tearing the lab down", "signal", sig.String())
			_ = l.Close(ctx)
		}()
	}
	wg.Wait()
	// Die of the same signal, as if nobody had caught it.
	signal.Reset(sig)
	p, _ := os.FindProcess(os.Getpid())
	_ = p.Signal(sig)
	time.Sleep(time.Second)
	os.Exit(130)
}
