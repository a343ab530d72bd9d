package witness

import (
	"fmt"
	"testing"
)

// FuzzVoteSafety drives random vote requests, epoch-raising hellos and
// restarts (through State) and checks the one property elections rely on:
// in any epoch, every reply that carries that epoch names the same leader.
func FuzzVoteSafety(f *testing.F) {
	f.Add([]byte{1, 0, 2, 1, 0x81, 2, 3, 1})
	f.Add([]byte{5, 1, 5, 2, 0xff, 5, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := newTestCore(t, nil)
		granted := map[uint64]string{}
		cands := []string{idA, idB, "cccccccccccccccccccccccccccccccccccccccc"}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], ops[i+1]
			switch {
			case op == 0xff: // restart from the durable state
				st := c.State()
				c = newTestCore(t, &st)
			case op&0x80 != 0: // a peer's hello raises the current epoch
				h := fmt.Sprintf("10.0.0.9,26379,%s,%d,mymaster,10.0.0.1,6379,0", idB, arg%16)
				_ = c.ProcessHello(h, t0)
			default:
				epoch := uint64(op % 16)
				r := c.IsMasterDownByAddr("10.0.0.1", 6379, epoch, cands[int(arg)%len(cands)], t0)
				if r.Leader == "*" {
					continue
				}
				if prev, ok := granted[r.LeaderEpoch]; ok && prev != r.Leader {
					t.Fatalf("epoch %d: voted %s and %s", r.LeaderEpoch, prev, r.Leader)
				}
				granted[r.LeaderEpoch] = r.Leader
				if r.LeaderEpoch > c.CurrentEpoch() {
					t.Fatalf("leader epoch %d ahead of current epoch %d", r.LeaderEpoch, c.CurrentEpoch())
				}
			}
		}
	})
}
