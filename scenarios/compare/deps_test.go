package compare

import (
	"os/exec"
	"strings"
	"testing"
)

// The aggregation is pure: results in, a typed table out. It depends on the result model only,
// so renderers and the simulator's tooling can use it without Docker, labs or Redis clients.
func TestPure(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/redisha/redisha/") && dep != "github.com/redisha/redisha/scenarios/compare" &&
			dep != "github.com/redisha/redisha/scenarios/result" {
			t.Errorf("compare depends on %s", dep)
		}
		for _, f := range []string{"net/http", "os/exec", "github.com/docker/", "github.com/redis/go-redis"} {
			if strings.HasPrefix(dep, f) {
				t.Errorf("compare depends on %s", dep)
			}
		}
	}
}
