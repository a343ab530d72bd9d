package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/scenarios/lab"
)

func runLabCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newLabCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// `redisha lab up` leaves the reference stack running and prints its nodes
// with the VIP on a line of its own; `redisha lab down` removes it all.
func TestLabUpDown(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: brings up containers")
	}
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "rhl-" + hex.EncodeToString(b)
	t.Cleanup(func() { _, _ = lab.GC(context.Background(), lab.GCOptions{Only: []string{name}, Force: true}) })

	out, err := runLabCmd(t, "up", "--stack", "reference", "--name", name, "--down-after-ms", "2000")
	if err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	t.Log("\n" + out)
	for _, node := range []string{"redis1", "redis2", "sentinel", "haproxy1", "haproxy2", "client"} {
		if !regexp.MustCompile(`(?m)^` + node + `\s+\S+\s+10\.77\.\d+\.\d+\s`).MatchString(out) {
			t.Errorf("no table line for %s", node)
		}
	}
	m := regexp.MustCompile(`(?m)^vip\s+vip\s+(10\.77\.\d+\.200)\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no line of its own labelled vip")
	}
	if _, err := netip.ParseAddr(m[1]); err != nil {
		t.Fatal(err)
	}

	// Another process's view: status lists it, down removes it.
	st, err := runLabCmd(t, "status")
	if err != nil || !strings.Contains(st, "lab "+name) || !strings.Contains(st, m[1]) {
		t.Fatalf("lab status: %v\n%s", err, st)
	}
	if out, err := runLabCmd(t, "down", name); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	labs, host, err := lab.Leftovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range labs {
		if l == name {
			t.Errorf("lab %s still known after down", name)
		}
	}
	for _, h := range host {
		if strings.Contains(h, name) {
			t.Errorf("left after down: %s", h)
		}
	}
	if _, err := runLabCmd(t, "down", name); err == nil || !strings.Contains(err.Error(), "no lab named") {
		t.Fatalf("second down: %v", err)
	}
}
