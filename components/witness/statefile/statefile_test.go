package statefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/witness/core"
)

const (
	idW = "0123456789abcdef0123456789abcdef01234567"
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func cfg() core.Config {
	return core.Config{MyID: idW, Masters: []core.MasterConfig{{
		Name: "mymaster", Addr: core.Addr{IP: "10.0.0.1", Port: 6379}, Quorum: 2, DownAfter: time.Second}}}
}

func TestMissingIsFirstStart(t *testing.T) {
	st, err := Load(filepath.Join(t.TempDir(), "state.json"))
	if err != nil || st != nil {
		t.Fatalf("got %v %v", st, err)
	}
}

func TestCorruptRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	for _, body := range []string{"{", `{"myid":"zz"}`, `{"unknown":1}`} {
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := Load(p); err == nil {
			t.Errorf("%q loaded without error", body)
		}
	}
}

// TestRestartNeverVotesTwice goes through the file: vote for A in epoch 9,
// persist, "restart" from disk, ask for B in epoch 9: still A.
func TestRestartNeverVotesTwice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	now := time.Unix(1000, 0)
	c, err := core.New(cfg(), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	acts := c.IsMasterDownByAddr(now, "10.0.0.1", 6379, 9, idA)
	r, _ := core.DownReplyOf(acts)
	st0 := core.PersistOf(acts)
	if r.Leader != idA || st0 == nil {
		t.Fatalf("vote %+v persist %v", r, st0)
	}
	if err := Save(p, *st0); err != nil {
		t.Fatal(err)
	}
	st, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := core.New(cfg(), now, st)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := core.DownReplyOf(c2.IsMasterDownByAddr(now, "10.0.0.1", 6379, 9, idB)); r.Leader != idA || r.LeaderEpoch != 9 {
		t.Fatalf("after restart: %+v", r)
	}
	// Overwrite keeps exactly one file and no temporaries.
	if err := Save(p, c2.State()); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("leftover files: %v", ents)
	}
}

func TestSaveFailsLoudly(t *testing.T) {
	err := Save(filepath.Join(t.TempDir(), "missing-dir", "state.json"), core.State{})
	if err == nil || !strings.Contains(err.Error(), "state file") {
		t.Fatalf("got %v", err)
	}
}
