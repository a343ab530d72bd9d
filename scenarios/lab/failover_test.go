package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clientAddrViaVIP asks Redis, through the VIP from the client namespace,
// which address the connection comes from: the HAProxy node that holds the
// VIP. A fresh connection each time, so it follows the VIP.
func clientAddrViaVIP(ctx context.Context, l *Lab) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(l.VIP.String(), "6379"), Dialer: l.ClientDial,
		DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1, PoolSize: 1})
	defer c.Close()
	info, err := c.ClientInfo(ctx).Result()
	if err != nil {
		return "", err
	}
	host, _, err := net.SplitHostPort(info.Addr)
	return host, err
}

// waitVIPAt waits until the VIP is held by want alone and answers through it.
func waitVIPAt(t *testing.T, ctx context.Context, l *Lab, want *Node) time.Duration {
	t.Helper()
	start := time.Now()
	var lastHolders []*Node
	var lastAddr string
	var lastErr error
	for {
		hs, err := l.VIPHolders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lastHolders = hs
		if len(hs) == 1 && hs[0] == want {
			lastAddr, lastErr = clientAddrViaVIP(ctx, l)
			if lastErr == nil && lastAddr == want.IP().String() {
				return time.Since(start)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("VIP never answered from %s: holders %v, last answer from %q (%v)", want.Name(), lastHolders, lastAddr, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestVIPFollowsHAProxy(t *testing.T) {
	l := upReference(t, Params{DownAfterMs: 2000})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h1, h2 := l.Node("haproxy1"), l.Node("haproxy2")

	waitVIPAt(t, ctx, l, h1)

	t.Run("VRRP needs the bridge rule", func(t *testing.T) {
		// The trap the lab's DOCKER-USER rule avoids: without it the internal
		// network drops VRRP multicast and both nodes claim the VIP.
		if err := removeBridgeAccept(l.Bridge, l.Name); err != nil {
			t.Fatal(err)
		}
		restored := false
		defer func() {
			if !restored {
				_ = addBridgeAccept(l.Bridge, l.Name)
			}
		}()
		waitFor(t, ctx, "both keepalived nodes to claim the VIP without the rule", func() bool {
			hs, err := l.VIPHolders(ctx)
			return err == nil && len(hs) == 2
		})
		if err := addBridgeAccept(l.Bridge, l.Name); err != nil {
			t.Fatal(err)
		}
		restored = true
		took := waitVIPAt(t, ctx, l, h1)
		t.Logf("with the rule back, haproxy1 alone holds the VIP after %v", took.Round(time.Millisecond))
	})

	t.Run("haproxy daemon killed", func(t *testing.T) {
		// chk_haproxy (killall -0 haproxy every 2 s, weight 2) drops haproxy1
		// from 103 to 101, below haproxy2's 102. Only works because the
		// node's init reaps the dead haproxy: a zombie would pass killall -0.
		pid, err := h1.DaemonPID(ctx, "haproxy")
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		took := waitVIPAt(t, ctx, l, h2)
		t.Logf("VIP moved to haproxy2 %v after haproxy died", took.Round(time.Millisecond))
		if _, err := h1.DaemonPID(ctx, "haproxy"); err == nil {
			t.Fatal("haproxy still found after SIGKILL (zombie?)")
		}
		if err := h1.StartDaemon(ctx, "haproxy"); err != nil {
			t.Fatal(err)
		}
		took = waitVIPAt(t, ctx, l, h1)
		t.Logf("VIP back on haproxy1 %v after haproxy restarted", took.Round(time.Millisecond))
	})

	t.Run("haproxy node killed", func(t *testing.T) {
		oldPid := h1.Pid()
		if err := h1.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		if h1.Pid() != 0 {
			t.Fatalf("pid after kill %d", h1.Pid())
		}
		took := waitVIPAt(t, ctx, l, h2)
		t.Logf("VIP answers from haproxy2 %v after haproxy1 was killed", took.Round(time.Millisecond))
		fmt.Printf("VIP failover after killing the active haproxy node: %v\n", took.Round(time.Millisecond))

		// Start brings the node back with every daemon (it is no first
		// boot) and, with the higher priority, the VIP.
		if err := h1.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if h1.Pid() == 0 || h1.Pid() == oldPid {
			t.Fatalf("pid after start %d (was %d)", h1.Pid(), oldPid)
		}
		waitVIPAt(t, ctx, l, h1)
	})

	t.Run("restart and pause", func(t *testing.T) {
		r2 := l.Node("redis2")
		if err := r2.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		// A restart is a clean stop: redis shut down by itself, it was not
		// killed when Docker's timeout ran out.
		waitFor(t, ctx, "redis2's clean shutdown in its log", func() bool {
			b, err := os.ReadFile(filepath.Join(l.LogDir, "redis2.log"))
			return err == nil && strings.Contains(string(b), "ready to exit, bye bye")
		})
		// Both daemons come back on a restarted node, sentinel included.
		waitFor(t, ctx, "redis2's daemons after restart", func() bool {
			_, e1 := r2.DaemonPID(ctx, "redis-server")
			_, e2 := r2.DaemonPID(ctx, "redis-sentinel")
			return e1 == nil && e2 == nil
		})
		if err := r2.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(r2.IP().String(), "6379"), DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, MaxRetries: -1})
		defer c.Close()
		if err := c.Ping(ctx).Err(); err == nil {
			t.Fatal("a paused node answered PING")
		}
		if err := r2.Unpause(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "redis2 to answer after unpause", func() bool { return c.Ping(ctx).Err() == nil })
	})

	t.Run("subnet and name taken", func(t *testing.T) {
		stack, _ := LoadStack("reference")
		_, err := Up(ctx, stack, Params{}, Options{Name: l.Name})
		if err == nil || !strings.Contains(err.Error(), "already exists") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("same name: %v", err)
		}
		name, _ := normalizeName("")
		testLabsMu.Lock()
		testLabs = append(testLabs, name)
		testLabsMu.Unlock()
		_, err = Up(ctx, stack, Params{}, Options{Name: name, Subnet: l.Subnet})
		if err == nil || !strings.Contains(err.Error(), "already taken") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("same subnet: %v", err)
		}
		t.Log(err)
	})
}

// TestCloseOnContextCancel: cancelling Up's context tears the lab down.
func TestCloseOnContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := upReferenceCtx(t, ctx, Params{})
	cancel()
	deadline := time.Now().Add(time.Minute)
	for {
		left := leftoversOf([]string{l.Name})
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leftovers a minute after cancel: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close after cancel: %v", err)
	}
}

// Cancelling Up half-way (here: a deadline shorter than start-up) leaves
// nothing behind and says why.
func TestCancelDuringUp(t *testing.T) {
	upReferencePrereqs(t)
	name, _ := normalizeName("")
	testLabsMu.Lock()
	testLabs = append(testLabs, name)
	testLabsMu.Unlock()
	stack, _ := LoadStack("reference")
	// The VIP settle alone takes over 4 s after the containers start.
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	l, err := Up(ctx, stack, Params{}, Options{Name: name, LogDir: t.TempDir()})
	if err == nil {
		l.Close(context.Background())
		t.Fatal("the lab came up within 2.5 s, faster than its VIP can settle")
	}
	if l != nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("Up = %v, %v; want nil and a deadline error", l, err)
	}
	t.Log(err)
	if left := leftoversOf([]string{name}); len(left) > 0 {
		t.Fatalf("leftovers after a cancelled Up: %v", left)
	}
}
