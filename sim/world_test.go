package sim

import (
	"bytes"
	"math/bits"
	"slices"
	"testing"
	"time"
)

func at(ms int) time.Time { return Epoch.Add(time.Duration(ms) * time.Millisecond) }

func TestEventsRunInTimeThenScheduleOrder(t *testing.T) {
	w := NewWorld(1, false)
	var got []string
	w.At(at(20), func() { got = append(got, "c") })
	w.At(at(10), func() { got = append(got, "a") })
	w.At(at(10), func() {
		got = append(got, "b")
		w.After(0, func() { got = append(got, "b2") }) // same instant, after everything queued
	})
	w.At(at(30), func() { got = append(got, "late") })
	if err := w.RunUntil(at(20)); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "b2", "c"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if w.Now() != at(20) {
		t.Fatalf("clock %v after RunUntil(20ms)", w.Elapsed())
	}
}

func TestCrashDropsAndFreezePostpones(t *testing.T) {
	w := NewWorld(1, true)
	n := w.AddNode("n")
	var got []string
	log := func(s string) func() { return func() { got = append(got, s+"@"+w.Elapsed().String()) } }
	w.NodeAt(n, at(10), log("lost"))
	w.At(at(5), func() { w.Crash(n) })
	w.At(at(15), func() { w.Restart(n) })
	w.NodeAt(n, at(10), log("dropped-too")) // queued before the crash, belongs to the old incarnation
	w.At(at(20), func() {
		w.NodeAt(n, at(25), log("first"))
		w.NodeAt(n, at(27), log("second"))
		w.Freeze(n)
	})
	w.At(at(40), func() { w.Thaw(n) })
	if err := w.RunUntil(at(100)); err != nil {
		t.Fatal(err)
	}
	if want := []string{"first@40ms", "second@40ms"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestTimerResetReplacesEarlierArming(t *testing.T) {
	w := NewWorld(1, false)
	n := w.AddNode("n")
	var fired []time.Duration
	tm := w.NewTimer(n, func() { fired = append(fired, w.Elapsed()) })
	tm.Reset(at(10))
	tm.Reset(at(30))
	w.At(at(35), func() { tm.Reset(at(50)); tm.Stop() })
	w.At(at(60), func() { tm.Reset(at(70)) })
	w.RunUntil(at(100))
	if want := []time.Duration{30 * time.Millisecond, 70 * time.Millisecond}; !slices.Equal(fired, want) {
		t.Fatalf("fired at %v, want %v", fired, want)
	}
}

func TestNetworkCutsLossAndCorruption(t *testing.T) {
	w := NewWorld(7, false)
	w.AddNode("a")
	w.AddNode("b")
	w.Net.Base = Link{Delay: time.Millisecond, Jitter: time.Millisecond}
	var got []string
	var corrupted, intact int
	w.Net.Handle("b", func(from string, data []byte, meta any) {
		got = append(got, meta.(string))
		if meta == "corrupt" {
			orig := []byte{0, 0, 0, 0}
			diff := 0
			for i := range data {
				diff += bits.OnesCount8(data[i] ^ orig[i])
			}
			if diff == 1 {
				corrupted++
			} else if bytes.Equal(data, orig) {
				intact++
			} else {
				t.Errorf("%d bits flipped", diff)
			}
		}
	})
	w.Net.Handle("a", func(string, []byte, any) { got = append(got, "to-a") })
	send := func(ms int, meta string) { w.At(at(ms), func() { w.Net.Send("a", "b", []byte{0, 0, 0, 0}, meta) }) }
	send(0, "clean")
	var lift, oneway func()
	w.At(at(10), func() { lift = w.Net.Partition([]string{"a"}, []string{"b"}) })
	send(11, "cut")
	w.At(at(12), func() { w.Net.Send("b", "a", nil, nil) })
	w.At(at(13), func() { oneway = w.Net.Between("b", "a", false, func(l *Link) { l.Cut = true }) })
	w.At(at(14), func() { lift() })
	send(15, "after-heal")
	w.At(at(16), func() { w.Net.Send("b", "a", nil, nil) }) // still cut one way
	w.At(at(17), func() { oneway() })
	w.At(at(18), func() { w.Net.Send("b", "a", nil, nil) })
	w.At(at(20), func() { w.Net.Between("a", "b", false, func(l *Link) { l.Corrupt = 0.5 }) })
	for i := range 200 {
		send(21+i, "corrupt")
	}
	w.RunUntil(at(1000))
	if !slices.Equal(got[:3], []string{"clean", "after-heal", "to-a"}) {
		t.Fatalf("deliveries %v", got[:3])
	}
	if corrupted < 60 || intact < 60 {
		t.Fatalf("corruption 0.5: %d corrupted, %d intact of 200", corrupted, intact)
	}
}

// Same seed, same draws: jitter and loss are reproducible.
func TestNetworkDeterministic(t *testing.T) {
	run := func(seed uint64) []time.Duration {
		w := NewWorld(seed, false)
		w.AddNode("a")
		w.AddNode("b")
		w.Net.Base = Link{Delay: time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.3}
		var arrivals []time.Duration
		w.Net.Handle("b", func(string, []byte, any) { arrivals = append(arrivals, w.Elapsed()) })
		for i := range 100 {
			w.At(at(i*10), func() { w.Net.Send("a", "b", nil, nil) })
		}
		w.RunUntil(at(2000))
		return arrivals
	}
	a, b, c := run(3), run(3), run(4)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different arrivals")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds, same arrivals")
	}
	if len(a) < 50 || len(a) > 90 {
		t.Fatalf("%d of 100 arrived with loss 0.3", len(a))
	}
}

func TestLivelockIsAnError(t *testing.T) {
	w := NewWorld(1, false)
	w.MaxSteps = 1000
	var loop func()
	loop = func() { w.After(0, loop) }
	w.At(at(1), loop)
	if err := w.RunUntil(at(10)); err == nil {
		t.Fatal("a zero-delay loop ran to the end")
	}
}
