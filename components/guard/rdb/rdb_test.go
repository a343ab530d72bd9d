package rdb

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

var update = flag.Bool("update", false, "copy the RDB files the real-redis test produces into testdata/")

// TestRealRedisFiles has a real redis-server write RDB files in the three
// situations rdbPopulateSaveInfo distinguishes and checks what the reader
// finds against what INFO said at the time of the SAVE.
func TestRealRedisFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts redis-server")
	}
	dirM, dirR := t.TempDir(), t.TempDir()
	m := testenv.StartRedis(t, testenv.RedisOptions{Extra: []string{"--dir", dirM, "--dbfilename", "m.rdb", "--repl-diskless-sync-delay", "0"}})
	do := func(addr string, args ...string) resp.Value {
		t.Helper()
		v, err := testenv.Do(addr, 15*time.Second, args...)
		if err != nil {
			t.Fatalf("%s %v: %v", addr, args, err)
		}
		return v
	}
	info := func(addr string) resp.Info { return resp.ParseInfo(do(addr, "INFO", "replication").Str) }

	// 1. A master that never had a replica has no backlog: no position.
	do(m.Addr(), "SET", "k0", "v0")
	do(m.Addr(), "SAVE")
	h := readT(t, filepath.Join(dirM, "m.rdb"))
	if h.HasReplication || h.Aux["repl-id"] != "" {
		t.Fatalf("standalone master's RDB has a replication position: %+v", h)
	}
	if h.Aux["redis-ver"] == "" || h.Version < 9 {
		t.Fatalf("header: %+v", h)
	}
	keep(t, filepath.Join(dirM, "m.rdb"), "standalone-master.rdb")

	// 2. A master with a replica: repl-id and repl-offset are INFO's.
	r := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: m.Addr(), Extra: []string{"--dir", dirR, "--dbfilename", "r.rdb"}})
	for i := 0; i < 50; i++ {
		do(m.Addr(), "SET", "k"+strconv.Itoa(i), strings.Repeat("x", i))
	}
	if n := do(m.Addr(), "WAIT", "1", "10000").Int; n != 1 {
		t.Fatalf("WAIT: %d replicas", n)
	}
	before := info(m.Addr())
	do(m.Addr(), "SAVE")
	after := info(m.Addr())
	if before.Get("master_repl_offset") != after.Get("master_repl_offset") {
		t.Fatalf("offset moved during SAVE: %s -> %s", before.Get("master_repl_offset"), after.Get("master_repl_offset"))
	}
	h = readT(t, filepath.Join(dirM, "m.rdb"))
	wantOff, _ := strconv.ParseInt(after.Get("master_repl_offset"), 10, 64)
	if !h.HasReplication || h.ReplID != after.Get("master_replid") || h.ReplOffset != wantOff || wantOff == 0 {
		t.Fatalf("master RDB position %q/%d, INFO says %q/%d (%+v)", h.ReplID, h.ReplOffset, after.Get("master_replid"), wantOff, h)
	}
	keep(t, filepath.Join(dirM, "m.rdb"), "master-with-replica.rdb")

	// 3. A replica saves its master's ID and its own processed offset.
	do(r.Addr(), "SAVE")
	ri := info(r.Addr())
	h = readT(t, filepath.Join(dirR, "r.rdb"))
	rOff, _ := strconv.ParseInt(ri.Get("master_repl_offset"), 10, 64)
	if !h.HasReplication || h.ReplID != after.Get("master_replid") || h.ReplOffset != rOff {
		t.Fatalf("replica RDB position %q/%d, INFO says %q/%d", h.ReplID, h.ReplOffset, ri.Get("master_replid"), rOff)
	}
	keep(t, filepath.Join(dirR, "r.rdb"), "replica.rdb")
}

// TestTestdata reads the committed files (written by real redis 7.0 through
// TestRealRedisFiles -update), so the reader keeps working without a server.
func TestTestdata(t *testing.T) {
	for name, wantRepl := range map[string]bool{"standalone-master.rdb": false, "master-with-replica.rdb": true, "replica.rdb": true} {
		h := readT(t, filepath.Join("testdata", name))
		if h.HasReplication != wantRepl {
			t.Errorf("%s: HasReplication=%v, want %v (%+v)", name, h.HasReplication, wantRepl, h)
		}
		if wantRepl && (len(h.ReplID) != 40 || h.ReplOffset <= 0) {
			t.Errorf("%s: position %q/%d", name, h.ReplID, h.ReplOffset)
		}
	}
}

func readT(t *testing.T, path string) Header {
	t.Helper()
	h, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func keep(t *testing.T, src, name string) {
	t.Helper()
	if !*update {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// aux encodes one AUX field with plain length-prefixed strings.
func aux(k, v string) []byte {
	b := []byte{opAux, byte(len(k))}
	b = append(b, k...)
	b = append(b, byte(len(v)))
	return append(b, v...)
}

func TestEncodings(t *testing.T) {
	id := strings.Repeat("ab", 20)
	var b bytes.Buffer
	b.WriteString("REDIS0010")
	b.Write(aux("repl-stream-db", "0"))
	b.Write(aux("repl-id", id))
	// repl-offset as RDB_ENC_INT32 (0xC2), little endian 100000.
	b.Write([]byte{opAux, 11})
	b.WriteString("repl-offset")
	b.Write([]byte{0xC2, 0xA0, 0x86, 0x01, 0x00})
	// int8 and int16 encodings.
	b.Write([]byte{opAux, 1, 'a', 0xC0, 0xFF})
	b.Write([]byte{opAux, 1, 'b', 0xC1, 0x00, 0x80})
	// LZF: literal "abc" then two back references of 8 bytes at distance 3
	// (ctrl = (8-2)<<5, distance byte 2) give 19 bytes; a third of 4 gives 23.
	lz := []byte{2, 'a', 'b', 'c', 6 << 5, 2, 6 << 5, 2, 2 << 5, 2}
	b.Write([]byte{opAux, 1, 'z', 0xC3, byte(len(lz)), 23})
	b.Write(lz)
	// 14-bit length.
	long := strings.Repeat("y", 300)
	b.Write([]byte{opAux, 1, 'l', 0x40 | byte(300>>8), byte(300 & 0xFF)})
	b.WriteString(long)
	b.Write([]byte{0xFE, 0x00, 0xFF})
	h, err := ReadHeader(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.HasReplication || h.ReplID != id || h.ReplOffset != 100000 {
		t.Fatalf("position: %+v", h)
	}
	if h.Aux["a"] != "-1" || h.Aux["b"] != "-32768" || h.Aux["l"] != long {
		t.Fatalf("ints/long: %q %q %d", h.Aux["a"], h.Aux["b"], len(h.Aux["l"]))
	}
	if want := strings.Repeat("abc", 8)[:23]; h.Aux["z"] != want {
		t.Fatalf("lzf: %q, want %q", h.Aux["z"], want)
	}
}

func TestRejects(t *testing.T) {
	if _, err := ReadHeader(strings.NewReader("RELIS0010")); !errors.Is(err, ErrNotRDB) {
		t.Fatalf("bad magic: %v", err)
	}
	if _, err := ReadHeader(strings.NewReader("REDIS0010\xfa\x05ab")); err == nil {
		t.Fatal("truncated aux accepted")
	}
	// A stream-db of -1 is what redis itself refuses to restore.
	var b bytes.Buffer
	b.WriteString("REDIS0010")
	b.Write(aux("repl-stream-db", "-1"))
	b.Write(aux("repl-id", strings.Repeat("c", 40)))
	b.Write(aux("repl-offset", "5"))
	b.WriteByte(0xFF)
	if h, err := ReadHeader(&b); err != nil || h.HasReplication {
		t.Fatalf("stream-db -1: %+v %v", h, err)
	}
}

// FuzzReadHeader: no panic, no runaway allocation, and a position is only
// reported with a 40-character ID and a non-negative offset.
func FuzzReadHeader(f *testing.F) {
	for _, name := range []string{"standalone-master.rdb", "master-with-replica.rdb", "replica.rdb"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("REDIS0010\xfa\x01z\xc3\x0a\x17\x02abc\xc0\x02\xc0\x02\x40\x02\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data))
		if err == nil && h.HasReplication && (len(h.ReplID) != 40 || h.ReplOffset < 0) {
			t.Fatalf("bad position %+v", h)
		}
	})
}
