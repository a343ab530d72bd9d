package probe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/guard/driver"
	"github.com/redisha/redisha/components/testenv"
)

// TestAuthPipelineAndErrors: AUTH, several commands on one connection, an
// error reply kept as a value, refused and wrong-password connections.
func TestAuthPipelineAndErrors(t *testing.T) {
	r := testenv.StartRedis(t, testenv.RedisOptions{Password: "s3cret"})
	free := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	reps := Transport{Timeout: 2 * time.Second}.Do(context.Background(), []driver.Request{
		{Addr: r.Addr(), Auth: driver.Auth{Password: "s3cret"}, Cmds: [][]string{{"PING"}, {"NOSUCHCOMMAND"}, {"INFO", "replication"}}},
		{Addr: r.Addr(), Auth: driver.Auth{Password: "wrong"}, Cmds: [][]string{{"PING"}}},
		{Addr: r.Addr(), Cmds: [][]string{{"INFO", "replication"}}},
		{Addr: free, Cmds: [][]string{{"PING"}}},
	})
	if got := reps[0]; got.Err != nil || len(got.Values) != 3 || got.Values[0].Str != "PONG" ||
		!got.Values[1].IsError() || !strings.Contains(got.Values[2].Str, "role:master") {
		t.Fatalf("authenticated pipeline: %+v", got)
	}
	if got := reps[1]; got.Err == nil || got.Refused {
		t.Fatalf("wrong password: %+v", got)
	}
	// The handshake's CLIENT SETNAME is refused first: a connection error.
	if got := reps[2]; got.Err == nil || !strings.Contains(got.Err.Error(), "NOAUTH") {
		t.Fatalf("no password: %+v", got)
	}
	if got := reps[3]; got.Err == nil || !got.Refused {
		t.Fatalf("nothing listening: %+v", got)
	}
}

// TestDeadline: a listener that never answers costs one timeout, not more.
func TestDeadline(t *testing.T) {
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	rep := Transport{Timeout: 300 * time.Millisecond}.Do(context.Background(), []driver.Request{{Addr: l.Addr().String(), Cmds: [][]string{{"PING"}}}})[0]
	if rep.Err == nil || rep.Refused {
		t.Fatalf("silent listener: %+v", rep)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
}
