package daemon

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
	"github.com/redisha/redisha/components/resp"
)

// TestCaptureFuzzSeeds checks the interpreters against replies and events of
// real redis-server and redis-sentinel processes; with PROXY_CAPTURE_SEEDS=1 it
// also stores them as the fuzz seed corpora under ../driver/testdata/fuzz.
func TestCaptureFuzzSeeds(t *testing.T) {
	c := startCluster(t)
	store := os.Getenv("PROXY_CAPTURE_SEEDS") == "1"
	now := time.Now()
	write := func(target, name string, data []byte, asString bool) {
		switch target {
		case "FuzzViewFromReplies":
			r := resp.NewReader(bytes.NewReader(data))
			m, _ := r.ReadValue()
			a, _ := r.ReadValue()
			v := driver.ViewFromReplies(now, "s", m, a)
			if want := name != "unknown-master"; v.OK != want || (v.OK && (v.Addr != c.a.addr || v.Epoch != 0)) {
				t.Errorf("%s: real reply interpreted as %+v", name, v)
			}
		case "FuzzHealthFromInfo":
			h := driver.HealthFromInfo(now, "b", string(data))
			switch name {
			case "master":
				if !h.OK || h.Role != core.RoleMaster {
					t.Errorf("master INFO interpreted as %+v", h)
				}
			case "replica":
				if !h.OK || h.Role != core.RoleReplica || !h.LinkUp || h.MasterAddr != c.a.addr {
					t.Errorf("replica INFO interpreted as %+v", h)
				}
			default:
				if h.OK {
					t.Errorf("sentinel INFO taken for a backend: %+v", h)
				}
			}
		case "FuzzNoticeFromMessage":
			v, _ := resp.NewReader(bytes.NewReader(data)).ReadValue()
			ch, payload, ok := driver.NoticeFromMessage(v)
			p, pok := core.ParseNotice(ch, payload)
			if !ok || (!pok && ch != "+vote-for-leader") { // that one names no master
				t.Errorf("real %s message not understood: %q", name, data)
			} else if ch == "+switch-master" && (p.Effect != core.EffectFence || p.OldAddr != c.a.addr || p.NewAddr != c.b.addr) {
				t.Errorf("+switch-master interpreted as %+v", p)
			} else if ch == "+failover-state-send-slaveof-noone" && (p.Effect != core.EffectFence || p.OldAddr != c.a.addr) {
				t.Errorf("%s interpreted as %+v", ch, p)
			}
		}
		if !store {
			return
		}
		dir := filepath.Join("..", "driver", "testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		typ := "[]byte"
		if asString {
			typ = "string"
		}
		body := fmt.Sprintf("go test fuzz v1\n%s(%q)\n", typ, data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// raw sends commands on a fresh connection and returns the values read,
	// re-encoded byte for byte as RESP.
	raw := func(addr string, n int, cmds ...string) [][]byte {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		for _, cmd := range cmds {
			fmt.Fprintf(conn, "%s\r\n", cmd)
		}
		r := resp.NewReader(conn)
		var out [][]byte
		for i := 0; i < n; i++ {
			v, err := r.ReadValue()
			if err != nil {
				t.Fatalf("%v: %v", cmds, err)
			}
			var b bytes.Buffer
			w := resp.NewWriter(&b)
			if strings.HasPrefix(cmds[0], "HELLO 3") {
				w.SetProto(3)
			}
			w.Value(v)
			w.Flush()
			out = append(out, b.Bytes())
		}
		return out
	}
	s := c.sentinels[0].addr
	v := raw(s, 2, "SENTINEL MASTER m", "SENTINEL GET-MASTER-ADDR-BY-NAME m")
	write("FuzzViewFromReplies", "resp2-master", append(v[0], v[1]...), false)
	v = raw(s, 3, "HELLO 3", "SENTINEL MASTER m", "SENTINEL GET-MASTER-ADDR-BY-NAME m")
	write("FuzzViewFromReplies", "resp3-master", append(v[1], v[2]...), false)
	v = raw(s, 2, "SENTINEL MASTER nosuch", "SENTINEL GET-MASTER-ADDR-BY-NAME nosuch")
	write("FuzzViewFromReplies", "unknown-master", append(v[0], v[1]...), false)

	for name, n := range map[string]*node{"master": c.a, "replica": c.b} {
		info, err := n.client().Info(bg, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzHealthFromInfo", name, []byte(info), true)
	}
	sentinelInfo, _ := c.sentinels[0].client().Info(bg).Result()
	write("FuzzHealthFromInfo", "sentinel-info", []byte(sentinelInfo), true)

	// a failover's worth of pub/sub messages
	conn, err := net.Dial("tcp", c.sentinels[0].addr) // the leader: it publishes every step
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PSUBSCRIBE *\r\n")
	r := resp.NewReader(conn)
	r.ReadValue()
	waitFor(t, 10*time.Second, "sentinel mesh", func() bool {
		v, err := c.sentinels[0].client().Do(bg, "SENTINEL", "SENTINELS", "m").Slice()
		return err == nil && len(v) == 2
	})
	if err := c.sentinels[0].client().Do(bg, "SENTINEL", "FAILOVER", "m").Err(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	conn.SetReadDeadline(time.Now().Add(4 * time.Second))
	for {
		v, err := r.ReadValue()
		if err != nil {
			break
		}
		ch, _, ok := driver.NoticeFromMessage(v)
		if !ok || seen[ch] {
			continue
		}
		seen[ch] = true
		var b bytes.Buffer
		w := resp.NewWriter(&b)
		w.Value(v)
		w.Flush()
		write("FuzzNoticeFromMessage", strings.Trim(ch, "+-*"), b.Bytes(), false)
	}
	for _, ch := range []string{"+switch-master", "+failover-state-send-slaveof-noone", "+promoted-slave"} {
		if !seen[ch] {
			t.Errorf("captured no %s (saw %v)", ch, seen)
		}
	}
}
