package lab

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/netns"
)

// A lab whose process went away (Detach, as `redisha lab up` leaves it),
// plus stray host objects of a lab that never got a label: GC removes them
// all, and nothing else.
func TestGCRemovesLeftovers(t *testing.T) {
	upReferencePrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name, _ := normalizeName("")
	stray, _ := normalizeName("")
	testLabsMu.Lock()
	testLabs = append(testLabs, name, stray)
	testLabsMu.Unlock()

	stack, err := LoadStack("reference")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Up(ctx, stack, Params{}, Options{Name: name, Detach: true, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_ = l // abandoned on purpose: only GC may remove it

	// Stray objects of a lab that crashed half-way: a netns, a DOCKER-USER
	// rule and an nft table, with no container, network or state.
	if err := netns.Create(clientNetnsName(stray)); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "add", "table", "inet", stray+"-t").CombinedOutput(); err != nil {
		t.Fatalf("nft add table: %v %s", err, out)
	}
	if err := addBridgeAccept(stray, stray); err != nil {
		t.Fatal(err)
	}
	before := leftoversOf([]string{name, stray})
	for _, want := range []string{"container", "network", "state", "netns " + name + "-client", "netns " + stray + "-client", "link " + name, "nft table inet " + stray + "-t", "iptables DOCKER-USER"} {
		if !containsPrefix(before, want) {
			t.Errorf("before gc, %q is missing from %v", want, before)
		}
	}

	rep, err := GC(ctx, GCOptions{Only: []string{name, stray}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gc removed labs %v, host objects %v", rep.Labs, rep.Host)
	if left := leftoversOf([]string{name, stray}); len(left) > 0 {
		t.Fatalf("after gc: %v", left)
	}
	// A second run finds nothing.
	rep, err = GC(ctx, GCOptions{Only: []string{name, stray}})
	if err != nil || len(rep.Labs)+len(rep.Host) > 0 {
		t.Fatalf("second gc: %+v %v", rep, err)
	}
}

func containsPrefix(list []string, p string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
