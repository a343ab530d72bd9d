package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var cmd = newRunCmd()
	switch args[0] {
	case "list":
		cmd = newListCmd()
	case "report":
		cmd = newReportCmd()
	}
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args[1:])
	err := cmd.Execute()
	return out.String(), err
}

func TestList(t *testing.T) {
	out, err := execute(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"master-crash", "master-minority", "rolling-restart", "reference-minreplicas"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %s:\n%s", want, out)
		}
	}
}

func TestRunRejectsBadInputBeforeStarting(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\nworkload:\n  timout: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "no-such-scenario"}, {"run", bad}, {"run"}, {"run", "master-crash", "--repeat", "0"}} {
		_, err := execute(t, args...)
		var ee *exitError
		if err == nil || errors.As(err, &ee) {
			t.Errorf("%v: want a plain error (exit 2), got %v", args, err)
		}
	}
	_, err := execute(t, "run", bad)
	if !strings.Contains(err.Error(), "bad.yaml:3: unknown field timout") {
		t.Errorf("error lacks file:line:field: %v", err)
	}
}

func TestReportNeedsResults(t *testing.T) {
	if _, err := execute(t, "report", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no result.json") {
		t.Fatalf("err = %v", err)
	}
}

// A run directory written before results carried the judge's analysis still renders in full:
// report derives the failover and split-brain marks from the records, and leaves result.json as
// it was.
func TestReportRendersOldRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "old-master-returns-1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"result.json": `{"scenario":"old-master-returns","source":"catalog/old-master-returns.yaml","stack":"reference","seed":1,"run":1,
"nodes":{"redis1":"10.0.0.11","redis2":"10.0.0.12"},"workload":{"clients":1},"expect":{},
"started":"2026-11-24T12:00:00Z","workload_start":"2026-11-24T12:00:00Z","workload_end":"2026-11-24T12:00:30Z","ended":"2026-11-24T12:00:40Z",
"timeline":[],"faults":[],"verdicts":[],"summary":{"ops":2,"lost_writes":0},"outcome":"pass"}
`,
		"events.jsonl": `{"time":"2026-11-24T11:59:59Z","source":"runner","kind":"initial-master","attrs":{"addr":"10.0.0.11:6379"}}
{"time":"2026-11-24T12:00:14Z","source":"sentinel","kind":"+switch-master","node":"sentinel","detail":"mymaster 10.0.0.11 6379 10.0.0.12 6379"}
{"time":"2026-11-24T12:00:05Z","source":"proxy","kind":"backends","node":"haproxy1","detail":"redis/redis1=UP redis/redis2=UP"}
`,
		"history.jsonl": `{"id":1,"worker":0,"kind":"set","key":"r:1","value":"a","invoke":"2026-11-24T12:00:01Z","complete":"2026-11-24T12:00:01.001Z","status":"ok","server":"10.0.0.11:6379","node":"redis1"}
{"id":2,"worker":0,"kind":"set","key":"r:1","value":"b","invoke":"2026-11-24T12:00:20Z","complete":"2026-11-24T12:00:20.001Z","status":"ok","server":"10.0.0.11:6379","node":"redis1"}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := execute(t, "report", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	html, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"failover → redis2", "split-brain write: op 2", "haproxy1 routes to"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	if strings.Contains(string(html), "split-brain write: op 1 ") {
		t.Error("op 1 (before the failover) marked split-brain")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "result.json")); string(b) != files["result.json"] {
		t.Error("report rewrote result.json")
	}
}
