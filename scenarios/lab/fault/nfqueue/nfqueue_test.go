package nfqueue

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
)

func TestPacketID(t *testing.T) {
	hdr := make([]byte, 7)
	binary.BigEndian.PutUint32(hdr, 0xdeadbeef)
	b, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: 10, Data: []byte("payload")},
		{Type: attrPacketHdr, Data: hdr},
	})
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := packetID(b); !ok || id != 0xdeadbeef {
		t.Errorf("packetID = %#x, %v", id, ok)
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, {8, 0, 1, 0, 1, 2}} {
		if _, ok := packetID(bad); ok {
			t.Errorf("packetID(%v) found an id", bad)
		}
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, o := range []Options{
		{Loss: 1.5, Rand: r},
		{Loss: -0.1, Rand: r},
		{Delay: -time.Second},
		{Delay: time.Millisecond, Jitter: time.Second, Rand: r},
		{Delay: time.Second, Jitter: time.Millisecond}, // no Rand
		{Loss: 0.1}, // no Rand
		{NetnsPath: "/nonexistent/netns"},
	} {
		if d, err := Start(o); err == nil {
			d.Close()
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

func FuzzPacketID(f *testing.F) {
	f.Add([]byte{8, 0, 1, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) { packetID(b) })
}
