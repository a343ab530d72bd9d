// Package contract_test checks the architecture's import rules
// (docs/architecture.md): cores do no I/O, drivers hold no daemon plumbing,
// so the simulator can run both.
package contract_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func imports(t *testing.T, pkgs ...string) map[string][]string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	args := append([]string{"list", "-f", `{{.ImportPath}} {{join .Imports " "}}`}, pkgs...)
	out, err := exec.Command(goBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[f[0]] = f[1:]
	}
	return m
}

func TestImportRules(t *testing.T) {
	const mod = "github.com/redisha/redisha/components/"
	rules := []struct {
		pkgs      []string
		forbidden []string
	}{
		{[]string{mod + "proxy/core", mod + "vip/core", mod + "witness/core", mod + "guard/core"},
			[]string{"net", "net/http", "os", "os/exec", "github.com/prometheus/", "github.com/redis/go-redis/"}},
		{[]string{mod + "proxy/driver", mod + "vip/driver", mod + "witness/driver"},
			[]string{"net/http", "os/exec", "github.com/prometheus/", "github.com/redis/go-redis/"}},
	}
	for _, r := range rules {
		for pkg, imps := range imports(t, r.pkgs...) {
			for _, imp := range imps {
				for _, f := range r.forbidden {
					if imp == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f)) {
						t.Errorf("%s imports %s", pkg, imp)
					}
				}
			}
		}
	}
}
