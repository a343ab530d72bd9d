package core

import (
	"strings"
	"testing"
)

func TestParseHello(t *testing.T) {
	good := "10.0.0.5,26379," + idA + ",12,mymaster,10.0.0.1,6379,11"
	h, err := ParseHello(good)
	if err != nil {
		t.Fatal(err)
	}
	want := Hello{"10.0.0.5", 26379, idA, 12, "mymaster", "10.0.0.1", 6379, 11}
	if h != want || h.String() != good {
		t.Fatalf("got %+v / %q", h, h.String())
	}
	bad := []struct{ in, want string }{
		{"", "8 comma"},
		{"a,b,c", "8 comma"},
		{good + ",extra", "8 comma"},
		{"10.0.0.5,0," + idA + ",1,m,10.0.0.1,6379,1", "port"},
		{"10.0.0.5,70000," + idA + ",1,m,10.0.0.1,6379,1", "port"},
		{"10.0.0.5,26379," + idA + ",-1,m,10.0.0.1,6379,1", "current epoch"},
		{"10.0.0.5,26379," + idA + ",1,m,10.0.0.1,x,1", "master port"},
		{"10.0.0.5,26379," + idA + ",1,m,10.0.0.1,6379,18446744073709551616", "config epoch"},
		{",26379," + idA + ",1,m,10.0.0.1,6379,1", "sentinel ip"},
		{"10.0.0.5,26379,,1,m,10.0.0.1,6379,1", "run id"},
		{"10.0.0.5,26379," + idA + ",1,,10.0.0.1,6379,1", "master name"},
	}
	for _, b := range bad {
		if _, err := ParseHello(b.in); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: got %v, want error with %q", b.in, err, b.want)
		}
	}
}

// FuzzParseHello: never panics, and whatever parses renders back to itself.
func FuzzParseHello(f *testing.F) {
	f.Add("127.0.0.1,26379,5f8b0e6bf4e2a2b7e3a6c7c4d2b1a0f9e8d7c6b5,0,mymaster,127.0.0.1,6379,0")
	f.Add("10.79.0.3,26379," + idA + ",18446744073709551615,mymaster,10.79.0.2,6380,3")
	f.Add(",,,,,,,")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHello(s)
		if err != nil {
			return
		}
		h2, err := ParseHello(h.String())
		if err != nil || h2 != h {
			t.Fatalf("round trip of %q: %+v %v", s, h2, err)
		}
		c := newTestCore(t, nil)
		_, _ = c.ProcessHello(t0, s)
		if a, _ := c.MasterAddr("mymaster"); h.MasterName == "mymaster" && h.MasterConfigEpoch > 0 && a != (Addr{h.MasterIP, h.MasterPort}) {
			t.Fatalf("config epoch %d did not move the master", h.MasterConfigEpoch)
		}
	})
}
