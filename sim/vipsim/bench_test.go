package vipsim

import "testing"

// BenchmarkSchedule measures whole schedules (about 75 s of virtual time
// each); schedules/s is the explorer's throughput on one core.
func BenchmarkSchedule(b *testing.B) {
	events := 0
	for i := range b.N {
		events += Run(uint64(i), false, Options{}).Events
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "schedules/s")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
