package driver

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/resp"
)

// The seed corpora under testdata/fuzz were captured from real redis-server
// and redis-sentinel processes by the daemon's TestCaptureFuzzSeeds
// (PROXY_CAPTURE_SEEDS=1).

func FuzzViewFromReplies(f *testing.F) {
	f.Add([]byte("*4\r\n$4\r\nname\r\n$1\r\nm\r\n$12\r\nconfig-epoch\r\n$1\r\n3\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := resp.NewReader(bytes.NewReader(data))
		master, err := r.ReadValue()
		if err != nil {
			return
		}
		addr, _ := r.ReadValue() // a missing second reply is a zero value
		v := ViewFromReplies(time.Unix(0, 0), "s", master, addr)
		if v.OK {
			if _, _, err := net.SplitHostPort(v.Addr); err != nil || v.Epoch < 0 || v.Err != "" {
				t.Fatalf("accepted view with bad fields: %+v", v)
			}
		} else if v.Err == "" {
			t.Fatalf("rejected view without a reason: %+v", v)
		}
	})
}

func FuzzNoticeFromMessage(f *testing.F) {
	f.Add([]byte("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$14\r\n+switch-master\r\n$32\r\nm 127.0.0.1 6379 127.0.0.1 6380\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := resp.NewReader(bytes.NewReader(data)).ReadValue()
		if err != nil {
			return
		}
		ch, payload, ok := NoticeFromMessage(v)
		if !ok {
			return
		}
		p, ok := core.ParseNotice(ch, payload)
		if ok && p.OldAddr != "" {
			if _, _, err := net.SplitHostPort(p.OldAddr); err != nil {
				t.Fatalf("bad address %q from %q %q", p.OldAddr, ch, payload)
			}
		}
		// The core must survive any notice, routed or not.
		c, err := core.New(core.Config{MasterName: "m", Sentinels: []string{"s"}}, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		c.Notice(time.Unix(1, 0), core.Notice{Sentinel: "s", Channel: ch, Payload: payload})
	})
}

func FuzzHealthFromInfo(f *testing.F) {
	f.Add("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		h := HealthFromInfo(time.Unix(0, 0), "b", text)
		if h.OK != (h.Role == core.RoleMaster || h.Role == core.RoleReplica) {
			t.Fatalf("OK=%v with role %q", h.OK, h.Role)
		}
		if !h.OK && h.Err == "" {
			t.Fatal("failed check without a reason")
		}
	})
}
