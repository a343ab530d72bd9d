package scenarios

import (
	"os/exec"
	"strings"
	"testing"
)

// The scenario format, the records, the checkers and the result model stay small and pure, so
// the simulator can use them: no Docker, lab, HTTP or Redis client code, and the result model
// imports nothing of the project's.
func TestPurePackagesDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs go list")
	}
	forbidden := []string{"net/http", "github.com/docker/", "github.com/redis/go-redis", "github.com/redisha/redisha/scenarios/lab",
		"github.com/redisha/redisha/scenarios/observe", "github.com/redisha/redisha/scenarios/workload", "github.com/redisha/redisha/reports"}
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		return strings.Fields(string(out))
	}
	// reports renders; it never judges again.
	for _, dep := range deps("../reports") {
		if dep == "github.com/redisha/redisha/scenarios/check" || strings.HasPrefix(dep, "github.com/redisha/redisha/scenarios/lab") {
			t.Errorf("reports depends on %s", dep)
		}
	}
	for _, pkg := range []string{"./spec", "./check", "./history", "./result"} {
		for _, dep := range deps(pkg) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
			if pkg == "./result" && strings.HasPrefix(dep, "github.com/redisha/redisha/") && dep != "github.com/redisha/redisha/scenarios/result" {
				t.Errorf("result is a leaf, but depends on %s", dep)
			}
		}
	}
}
