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
