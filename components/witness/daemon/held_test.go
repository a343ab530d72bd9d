package daemon

import (
	"strconv"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/driver"
)

// TestHeldReplyKeepsConnectionOrder: a down-state probe that comes while
// the witness's own SDOWN deadline is near is held on its connection until
// the SDOWN fires (down=1, never before down-after), and the PING pipelined
// behind it on the same connection is answered after it, as behind a
// blocked client in Redis. The master here is a closed port (every PING
// refused), so the SDOWN clock runs from the witness's first PING; the
// request is aimed at the middle of the hold window, read from the
// witness's own last-ping-sent; a machine too loaded to land in the window
// gets a fresh witness, three times at most.
func TestHeldReplyKeepsConnectionOrder(t *testing.T) {
	const downAfter = 2 * time.Second // hold bound 500 ms
	for try := 1; try <= 3; try++ {
		s := startTest(t, func(o *Options) { o.Core.Masters[0].DownAfter = downAfter })
		c := dial(t, s)
		m, err := c.do("SENTINEL", "MASTER", "mymaster").Pairs()
		if err != nil {
			t.Fatal(err)
		}
		since, _ := strconv.Atoi(m["last-ping-sent"]) // ms since the first unanswered PING
		port := strconv.Itoa(s.opts.Core.Masters[0].Addr.Port)
		time.Sleep(downAfter - 250*time.Millisecond - time.Duration(since)*time.Millisecond)
		sent := time.Now()
		c.send("SENTINEL", "is-master-down-by-addr", "127.0.0.1", port, "0", "*")
		c.send("PING")
		first, second := c.read(), c.read()
		if first.Kind != resp.Array || len(first.Elems) != 3 || second.Str != "PONG" {
			t.Fatalf("replies out of order or wrong: %+v then %+v", first, second)
		}
		var st driver.Stats
		s.do(func(time.Time) { st = s.drv.Stats() })
		if st.Held == 0 {
			t.Logf("try %d: the request came %v after the PING it aimed at, outside the hold window; again", try, time.Since(sent))
			continue
		}
		if first.Elems[0].Int != 1 || st.ReleasedDown != 1 {
			t.Fatalf("held reply %+v, stats %+v: want released down=1 at the witness's SDOWN", first, st)
		}
		return
	}
	t.Fatal("no request landed in the hold window in 3 tries")
}
