package sim

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// toyRun is a tiny model: two nodes ping each other over a lossy link; the
// "invariant" breaks when a seed loses three pings in a row.
func toyRun(seed uint64, keep bool) Result {
	w := NewWorld(seed, keep)
	w.AddNode("a")
	w.AddNode("b")
	w.Net.Base = Link{Delay: time.Millisecond, Jitter: time.Millisecond, Loss: 0.3}
	got := 0
	w.Net.Handle("b", func(string, []byte, any) { got++; w.Logf("b: ping") })
	res := Result{Seed: seed, Stats: map[string]float64{}}
	for i := range 10 {
		w.After(time.Duration(i)*time.Second, func() { w.Net.Send("a", "b", nil, nil) })
	}
	w.RunUntil(Epoch.Add(20 * time.Second))
	if got < 5 {
		res.Violations = append(res.Violations, Violation{At: w.Elapsed(), Invariant: "toy", Detail: fmt.Sprintf("%d pings", got)})
	}
	res.Stats["pings"] = float64(got)
	res.Finish(w)
	return res
}

func TestExploreIndependentOfWorkers(t *testing.T) {
	one := Explore("toy", toyRun, 100, 300, 1)
	four := Explore("toy", toyRun, 100, 300, 4)
	if one.Events != four.Events || fmt.Sprint(one.Seeds) != fmt.Sprint(four.Seeds) || one.Stats["pings"] != four.Stats["pings"] {
		t.Fatalf("1 worker: %d events %v; 4 workers: %d events %v", one.Events, one.Seeds, four.Events, four.Seeds)
	}
	if len(one.Seeds["toy"]) == 0 || len(one.Seeds["toy"]) == 300 {
		t.Fatalf("toy invariant broke in %d of 300 runs; want some", len(one.Seeds["toy"]))
	}
	var b bytes.Buffer
	one.Print(&b, []string{"toy", "never"})
	for _, want := range []string{"schedules/s", "100..399", "toy", "never", "pings"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	// Each failing seed replays to the same verdict.
	for _, f := range one.Failed[:3] {
		if r := toyRun(f.Seed, true); len(r.Violations) != 1 || r.TraceHash != f.TraceHash {
			t.Fatalf("seed %d did not replay", f.Seed)
		}
	}
}
