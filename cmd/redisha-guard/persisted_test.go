package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redisha/redisha/components/guard/config"
	"github.com/redisha/redisha/components/guard/core"
	"github.com/redisha/redisha/components/testenv"
)

// TestPersisted: what the guard reads as this node's data, with files a real
// redis-server wrote (an AOF directory, an RDB) and without any.
func TestPersisted(t *testing.T) {
	dir := t.TempDir()
	r := testenv.StartRedis(t, testenv.RedisOptions{Extra: []string{"--dir", dir, "--appendonly", "yes", "--dbfilename", "dump.rdb"}})
	do(t, r.Addr(), "SET", "k", "v")
	do(t, r.Addr(), "SAVE")
	eventually(t, 10*time.Second, "AOF manifest written", func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.manifest"))
		return len(m) == 1, dir
	})
	cfg := config.Defaults()
	cases := []struct {
		name string
		set  func(c *config.Config)
		want core.Persisted
	}{
		{"appendonly with an AOF", func(c *config.Config) { c.AppendOnly, c.AOFDir = true, filepath.Join(dir, "appendonlydir") }, core.Persisted{Source: "aof"}},
		{"appendonly without an AOF", func(c *config.Config) { c.AppendOnly, c.AOFDir = true, filepath.Join(dir, "none") }, core.Persisted{Source: "none"}},
		{"RDB of a standalone master", func(c *config.Config) { c.RDB = filepath.Join(dir, "dump.rdb") }, core.Persisted{Source: "rdb"}},
		{"no RDB", func(c *config.Config) { c.RDB = filepath.Join(dir, "missing.rdb") }, core.Persisted{Source: "none"}},
	}
	for _, tc := range cases {
		c := cfg
		tc.set(&c)
		got, err := persisted(&c)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
	bad := filepath.Join(dir, "bad.rdb")
	if err := os.WriteFile(bad, []byte("not an rdb"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := cfg
	c.RDB = bad
	if _, err := persisted(&c); err == nil {
		t.Error("a file that is not an RDB was read")
	}
}
