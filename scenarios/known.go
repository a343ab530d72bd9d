package scenarios

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/spec"
)

// KnownVerdict is an expected non-pass verdict of a stack: a finding, not a regression.
type KnownVerdict struct {
	Status check.Status `yaml:"status"`
	Why    string       `yaml:"why"`
}

// Known maps scenario name to check name to its known verdict.
type Known map[string]map[string]KnownVerdict

// KnownVerdictsFile is the file a stack directory may ship.
const KnownVerdictsFile = "known-verdicts.yaml"

//go:embed known/*.yaml
var knownFS embed.FS

// LoadKnown reads the known verdicts of a stack: stackDir/known-verdicts.yaml for a stack given
// as a directory, or the built-in file for a built-in stack. No file means no known findings.
func LoadKnown(stack, stackDir string) (Known, error) {
	var data []byte
	var err error
	name := ""
	if stackDir != "" {
		name = filepath.Join(stackDir, KnownVerdictsFile)
		data, err = os.ReadFile(name)
	} else {
		name = "known/" + stack + ".yaml"
		data, err = knownFS.ReadFile(name)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return Known{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseKnown(name, data)
}

// ParseKnown decodes a known-verdicts file strictly.
func ParseKnown(name string, data []byte) (Known, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	k := Known{}
	if err := dec.Decode(&k); err != nil && err.Error() != "EOF" {
		return nil, spec.YAMLError(name, err)
	}
	checks := map[string]bool{check.CheckFailover: true, check.CheckUnavailability: true, check.CheckLostWrites: true,
		check.CheckSplitBrain: true, check.CheckLinearizable: true, check.CheckPubSub: true,
		check.CheckVIPMoves: true, check.CheckVIPDualHolders: true}
	for sc, m := range k {
		for c, v := range m {
			if !checks[c] {
				return nil, fmt.Errorf("%s: %s: unknown check %q", name, sc, c)
			}
			if v.Status != check.Fail && v.Status != check.Unknown {
				return nil, fmt.Errorf("%s: %s.%s: status must be fail or unknown, not %q", name, sc, c, v.Status)
			}
			if strings.TrimSpace(v.Why) == "" {
				return nil, fmt.Errorf("%s: %s.%s: say why (a known finding needs its reason)", name, sc, c)
			}
		}
	}
	return k, nil
}
