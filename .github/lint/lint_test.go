// Package lint checks the project's GitHub Actions workflows with actionlint (pinned in go.mod),
// so a broken workflow fails make test here instead of on GitHub. The workflows are only linted
// here, never run. The directory starts with a dot, so ./... skips it: make test runs it by path.
package lint

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

func lint(t *testing.T, files ...string) []*actionlint.Error {
	t.Helper()
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	return errs
}

func TestWorkflowsLintClean(t *testing.T) {
	files, err := filepath.Glob("../workflows/*.yml")
	if err != nil || len(files) < 2 {
		t.Fatalf("workflows: %v %v", files, err)
	}
	for _, e := range lint(t, files...) {
		t.Errorf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
}

// The check can fail: a sample with a YAML error (an unquoted colon in a step name, as ci.yml
// once had) and one with a misspelt matrix property and an undefined job dependency are rejected.
func TestBrokenWorkflowsFail(t *testing.T) {
	for file, wants := range map[string][]string{
		"testdata/broken.yml":      {"syntax-check: could not parse as YAML"},
		"testdata/broken-expr.yml": {`expression: property "shrad" is not defined`, `job-needs: job "merge" needs job "shards" which does not exist`},
	} {
		var got []string
		for _, e := range lint(t, file) {
			got = append(got, e.Kind+": "+e.Message)
		}
		all := strings.Join(got, "\n")
		for _, want := range wants {
			if !strings.Contains(all, want) {
				t.Errorf("%s: actionlint did not report %q:\n%s", file, want, all)
			}
		}
	}
}
