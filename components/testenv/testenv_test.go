package testenv

import (
	"bufio"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/stretchr/testify/require"
)

func TestRedisAndSentinel(t *testing.T) {
	master := StartRedis(t, RedisOptions{})
	replica := StartRedis(t, RedisOptions{ReplicaOf: master.Addr()})
	s := StartSentinel(t, SentinelOptions{MasterAddr: master.Addr(), Quorum: 1})

	require.Eventually(t, func() bool {
		v, err := Do(replica.Addr(), time.Second, "INFO", "replication")
		return err == nil && resp.ParseInfo(v.Str).Get("master_link_status") == "up"
	}, 10*time.Second, 50*time.Millisecond)
	v, err := Do(s.Addr(), time.Second, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
	require.NoError(t, err)
	require.Len(t, v.Elems, 2)

	master.Pause()
	require.Error(t, Ping(master.Addr(), 200*time.Millisecond), "a SIGSTOPped redis must not answer")
	master.Resume()
	require.NoError(t, Ping(master.Addr(), time.Second))
	locked := StartRedis(t, RedisOptions{Password: "pw"})
	require.Error(t, Ping(locked.Addr(), time.Second), "no PING without AUTH")
	require.NoError(t, PingAuth(locked.Addr(), "pw", time.Second))

	master.Kill()
	require.False(t, master.Running())
	master.Start()
	master.WaitReady(10 * time.Second)
}

func TestTopologyCutAndHeal(t *testing.T) {
	topo := NewTopology(t, "rht-", netip.MustParsePrefix("10.82.0.0/24"), "a", "b", "c")
	a, b, c := topo.Host("a"), topo.Host("b"), topo.Host("c")
	srv := StartRedis(t, RedisOptions{Host: a.IP.String(), Netns: a.Netns})
	require.Equal(t, a.IP.String(), srv.Host)

	pingFrom := func(h *Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		conn, err := h.Dial()(ctx, "tcp", srv.Addr())
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := conn.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		_, err = resp.NewReader(bufio.NewReader(conn)).ReadValue()
		return err
	}
	require.NoError(t, pingFrom(b))
	require.NoError(t, pingFrom(c))

	heal := topo.Cut(a, b)
	require.Error(t, pingFrom(b), "b is cut off from a")
	require.NoError(t, pingFrom(c), "c still reaches a")
	require.NoError(t, Ping(srv.Addr(), time.Second), "the observer on the bridge still reaches a")
	heal()
	require.NoError(t, pingFrom(b))
}
