package sim_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The simulator runs the production cores and drivers in virtual time; the
// daemons' I/O (HTTP admin, Prometheus, the go-redis client) must stay out of
// it, or a driver has grown I/O that the simulator cannot drive.
func TestSimImportsNoDaemonIO(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", "github.com/redisha/redisha/sim/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{"net/http", "github.com/prometheus/", "github.com/redis/go-redis/"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f) {
				t.Errorf("sim depends on %s", pkg)
			}
		}
	}
}
