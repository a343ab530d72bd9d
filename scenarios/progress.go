package scenarios

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisha/redisha/reports"
	"github.com/redisha/redisha/scenarios/history"
)

// setPhase records a phase change in events.jsonl and on the progress line.
func (r *runner) setPhase(p string) {
	r.phase.Store(p)
	if r.events != nil {
		r.events.Write(history.Event{Time: time.Now(), Source: history.SourceRunner, Kind: history.KindPhase, Detail: p})
	}
	r.progressLine(false)
}

// progressLine prints the run's progress: one line rewritten in place on a terminal, else a
// line per phase change and every 10 s; final prints the outcome.
func (r *runner) progressLine(final bool) {
	if r.opt.Progress == nil {
		return
	}
	r.progMu.Lock()
	defer r.progMu.Unlock()
	p, _ := r.phase.Load().(string)
	el := time.Since(r.res.Started).Seconds()
	line := fmt.Sprintf("[%s #%d] %-9s %5.1fs  ok %d  failed %d  indeterminate %d  failovers %d",
		r.s.Name, r.res.Run, p, el, r.cnt.OK.Load(), r.cnt.Fail.Load(), r.cnt.Indeterminate.Load(), r.fails.Load())
	if final {
		line = fmt.Sprintf("[%s #%d] %s in %.1fs: %s", r.s.Name, r.res.Run, r.res.Outcome, el, reports.Verdict(r.res))
	}
	switch {
	case isTerminal(r.opt.Progress):
		// One line, rewritten in place; the final line stays.
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(r.opt.Progress, "\r\033[K%s%s", line, end)
	case final || p != r.lastPhase || time.Since(r.lastLine) >= 10*time.Second:
		// Logs and CI: phase changes and a line every 10 s.
		fmt.Fprintln(r.opt.Progress, line)
		r.lastLine = time.Now()
	}
	r.lastPhase = p
}

// tickProgress refreshes the progress line every second until the returned stop is called.
func (r *runner) tickProgress() (stop func()) {
	tick := time.NewTicker(time.Second)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-tick.C:
				r.progressLine(false)
			case <-done:
				return
			}
		}
	}()
	return func() { tick.Stop(); close(done) }
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// tap passes events on to the file and counts failovers for the live progress display.
type tap struct {
	w    *history.Writer
	seen sync.Map
	n    *atomic.Int64
}

func (t *tap) Write(v any) {
	if e, ok := v.(history.Event); ok && e.Kind == history.KindSwitchMaster {
		if _, dup := t.seen.LoadOrStore(e.Attrs["to"], true); !dup {
			t.n.Add(1)
		}
	}
	t.w.Write(v)
}
