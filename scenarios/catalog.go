package scenarios

import (
	"embed"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/redisha/redisha/scenarios/spec"
)

//go:embed catalog/*.yaml
var catalogFS embed.FS

// DemoScenarios is the short subset `redisha run --demo` runs.
var DemoScenarios = []string{"master-crash", "master-replica-partition", "master-minority"}

// Catalog returns every built-in scenario, sorted by name.
func Catalog() ([]*spec.Scenario, error) {
	entries, err := catalogFS.ReadDir("catalog")
	if err != nil {
		return nil, err
	}
	var out []*spec.Scenario
	for _, e := range entries {
		data, err := catalogFS.ReadFile(path.Join("catalog", e.Name()))
		if err != nil {
			return nil, err
		}
		s, err := spec.Parse("catalog/"+e.Name(), data)
		if err != nil {
			return nil, err
		}
		if want := strings.TrimSuffix(e.Name(), ".yaml"); s.Name != want {
			return nil, fmt.Errorf("catalog/%s: name %q does not match the file name", e.Name(), s.Name)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Load resolves a command-line argument: an existing file path, or a catalog name.
func Load(arg string) (*spec.Scenario, error) {
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		return spec.ParseFile(arg)
	}
	all, err := Catalog()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range all {
		if s.Name == arg {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("%s: no such file and no such built-in scenario (redisha list shows: %s)", arg, strings.Join(names, ", "))
}
