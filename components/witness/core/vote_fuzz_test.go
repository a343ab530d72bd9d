package core

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
				_, _ = c.ProcessHello(t0, h)
			default:
				epoch := uint64(op % 16)
				acts := c.IsMasterDownByAddr(t0, "10.0.0.1", 6379, epoch, cands[int(arg)%len(cands)])
				r := downReply(t, acts)
				// The durable state leads the reply whenever it carries a new vote.
				if st := PersistOf(acts); st != nil {
					st2 := c.State()
					if st.Masters[0].Leader != st2.Masters[0].Leader || st.Masters[0].LeaderEpoch != st2.Masters[0].LeaderEpoch || acts[0].Kind != ActPersist {
						t.Fatalf("persisted state %+v does not carry the vote %+v", st, st2)
					}
				}
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
