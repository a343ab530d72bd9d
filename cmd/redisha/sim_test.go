package main

import (
	"bytes"
	"strings"
	"testing"
)

func runSim(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newSimCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestSimCommandTable(t *testing.T) {
	out, err := runSim(t, "vip", "--schedules", "200", "--seed", "5")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"schedules/s", "5..204", "two-holders", "graceful-handover"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSimCommandReportsPlantedBugWithReplayableSeed(t *testing.T) {
	out, err := runSim(t, "vip", "--schedules", "50", "--seed", "1", "--mutation", "keep-vip")
	if err == nil {
		t.Fatalf("a planted bug passed:\n%s", out)
	}
	i := strings.Index(out, "replay one: redisha sim vip --seed ")
	if i < 0 {
		t.Fatalf("no replay line:\n%s", out)
	}
	line, _, _ := strings.Cut(out[i+len("replay one: redisha sim "):], "\n")
	args := strings.Fields(line)
	tr, err := runSim(t, args...)
	if err == nil || !strings.Contains(tr, "VIOLATION") || !strings.Contains(tr, "schedule:") {
		t.Fatalf("replaying %v did not show the violation (err %v):\n%.2000s", args, err, tr)
	}
}

func TestSimCommandRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{{"kernel"}, {"vip", "--mutation", "nope"}, {"vip", "--schedules", "0"}, {}} {
		if _, err := runSim(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
