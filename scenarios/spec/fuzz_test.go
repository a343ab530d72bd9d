package spec

import (
	"strings"
	"testing"
)

// FuzzParse: any input gives a scenario or an error naming the file, never a panic, and an
// accepted scenario always resolves to a timeline inside its workload.
func FuzzParse(f *testing.F) {
	f.Add([]byte(randomized))
	f.Add([]byte("name: x\nfaults: [{at: 1s, kind: crash, targets: [redis1]}]\n"))
	f.Add([]byte("name: x\nexpect: {failover: one, failover-within: 5s}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, tf := range s.Timeline(7) {
			if tf.At < 0 || tf.At >= s.Workload.Duration.D() || tf.Duration < 0 {
				t.Fatalf("timeline entry outside the workload: %+v", tf)
			}
		}
	})
}
