package interop_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIConfigErrors: a bad config file stops redisha-witness with exit
// code 2 and a message naming the problem; -check accepts a good one.
func TestCLIConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, body, want string }{
		{"missing", "", "no such file"},
		{"typo", "masters: []\nbnid: [127.0.0.1]\n", "typo.yaml:2: bnid: unknown key"},
		{"hostname", "masters:\n  - {name: m, address: 'redis1:6379', quorum: 2}\n", `"redis1" is not an IP address`},
		{"protected", "bind: [0.0.0.0]\nmasters:\n  - {name: m, address: '10.0.0.1:6379', quorum: 2}\n", "protected mode"},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.name+".yaml")
		if tc.name != "missing" {
			os.WriteFile(path, []byte(tc.body), 0o644)
		}
		out, err := exec.Command(witnessBin, "-config", path, "-check").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: exit %v, output %q; want exit 2 and %q", tc.name, err, out, tc.want)
		}
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("state_file: "+filepath.Join(dir, "s.json")+"\nmasters:\n  - {name: m, address: '10.0.0.1:6379', quorum: 2}\n"), 0o644)
	if out, err := exec.Command(witnessBin, "-config", good, "-check").CombinedOutput(); err != nil || !strings.Contains(string(out), "config ok") {
		t.Errorf("good config: %v %s", err, out)
	}
	// A corrupt state file refuses to start (exit 1) instead of forgetting votes.
	os.WriteFile(filepath.Join(dir, "s.json"), []byte("{broken"), 0o600)
	out, err := exec.Command(witnessBin, "-config", good).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "corrupt") {
		t.Errorf("corrupt state: exit %v, output %q", err, out)
	}
}
