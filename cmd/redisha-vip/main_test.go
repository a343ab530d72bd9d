package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// execute runs one command line through daemonkit, as main does.
func execute(args ...string) (int, string) {
	var out bytes.Buffer
	code := vipDaemon().Execute(context.Background(), args, &out, &out)
	return code, out.String()
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("interface: eth0\nvrid: 1\npriority: 100\nvirtual_addresses: [10.78.0.100]\n"), 0o644)
	os.WriteFile(bad, []byte("interface: eth0\nvrid: 1\npriority: 100\nvirtual_addresses: [10.78.0.100]\nprioriti: 5\n"), 0o644)
	for _, tc := range []struct {
		file, want string
		ok         bool
	}{
		{good, "configuration OK", true},
		{bad, "bad.yaml:5: prioriti: unknown key", false},
		{filepath.Join(dir, "missing.yaml"), "no such file", false},
		{"../../components/vip/dist/redisha-vip.example.yaml", "configuration OK", true},
	} {
		// Today's spellings: -c and --config, before or after the subcommand.
		for _, args := range [][]string{{"check-config", "-c", tc.file}, {"check-config", "--config", tc.file},
			{"--config", tc.file, "check-config"}, {"-c", tc.file, "check-config"}} {
			code, out := execute(args...)
			if (code == 0) != tc.ok || !strings.Contains(out, tc.want) {
				t.Errorf("%v: exit %d out=%q, want %q", args, code, out, tc.want)
			}
		}
	}
	// Go flag spellings still work, with one deprecation line.
	example := "../../components/vip/dist/redisha-vip.example.yaml"
	if code, out := execute("-config", example, "check-config"); code != 0 || !strings.Contains(out, "deprecated") ||
		!strings.Contains(out, "configuration OK") {
		t.Errorf("-config FILE check-config: exit %d %q", code, out)
	}
	if code, out := execute("version"); code != 0 || !strings.HasPrefix(out, "redisha-vip ") {
		t.Errorf("version: exit %d %q", code, out)
	}
	if code, out := execute(); code != 0 || !strings.Contains(out, "check-config") {
		t.Errorf("no arguments must print help, as before: exit %d %q", code, out)
	}
}

// TestExampleConfigAndFlags starts the daemon as the systemd unit and the lab
// do (`run -c FILE`, and `--config FILE run`) with the shipped example
// configuration, in a namespace of its own (eth0 needs only an IPv4 address; the
// VIP is never added in FAULT), and
// asks it with `status -c FILE`. The example's haproxy process check has
// fault semantics; the process check scans the whole machine's /proc (not
// the namespace), where other tests may run an haproxy, so the test's copy
// names a process that cannot exist, and the instance is in FAULT.
func TestExampleConfigAndFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace test skipped under -short")
	}
	testenv.RequireRoot(t)
	shipped, err := os.ReadFile("../../components/vip/dist/redisha-vip.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(shipped), "process: haproxy\n", "process: rhv-no-such-haproxy\n", 1)
	if conf == string(shipped) {
		t.Fatal("the example config no longer tracks the haproxy process: update this test")
	}
	example := filepath.Join(t.TempDir(), "redisha-vip.example.yaml")
	if err := os.WriteFile(example, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "redisha-vip")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	topo := testenv.NewTopology(t, "rhvc-", netip.MustParsePrefix("10.76.0.0/24"), "a")
	ha := topo.Host("a")
	for _, argv := range [][]string{{bin, "run", "-c", example}, {bin, "--config", example, "run"}} {
		p := testenv.StartProcess(t, testenv.ProcessSpec{Name: "redisha-vip-example", Dir: t.TempDir(), Netns: ha.Netns, Argv: argv})
		deadline := time.Now().Add(10 * time.Second)
		var out string
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err = ha.Run(ctx, bin, "status", "-c", example)
			cancel()
			if err == nil && strings.Contains(out, "proxy-vip: FAULT") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: status: %v\n%s\nlog:\n%s", argv, err, out, p.LogTail(40))
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, want := range []string{"VRID 51", "VRRPv3", "advert 100 cs"} {
			if !strings.Contains(out, want) {
				t.Fatalf("%v: status lacks %q:\n%s", argv, want, out)
			}
		}
		p.Stop()
	}
}
