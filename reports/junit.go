package reports

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"

	"github.com/redisha/redisha/scenarios/result"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Time      float64     `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Props     []junitProp `xml:"properties>property,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string       `xml:"name,attr"`
	Classname string       `xml:"classname,attr"`
	Time      float64      `xml:"time,attr"`
	Failure   *junitDetail `xml:"failure,omitempty"`
	Error     *junitDetail `xml:"error,omitempty"`
	SystemOut string       `xml:"system-out,omitempty"`
}

type junitDetail struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// suiteName is unique per run, so repetitions stay apart.
func suiteName(r *result.Result) string {
	return fmt.Sprintf("%s[%s#%d]", r.Scenario, r.Stack, r.Run)
}

func junitFor(r *result.Result) junitSuite {
	s := junitSuite{Name: suiteName(r), Time: r.Ended.Sub(r.Started).Seconds(), Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05"),
		Props: []junitProp{{"seed", fmt.Sprint(r.Seed)}, {"stack", r.Stack}}}
	class := "redisha." + r.Scenario
	if r.Error != "" {
		// A harness error is a JUnit error, never a failure: the stack was not judged.
		s.Cases = append(s.Cases, junitCase{Name: "harness", Classname: class,
			Error: &junitDetail{Message: firstLine(r.Error), Type: "harness", Body: r.Error}})
	}
	for _, v := range r.Verdicts {
		c := junitCase{Name: v.Check, Classname: class,
			SystemOut: fmt.Sprintf("expected: %s\nobserved: %s\n%s", v.Expected, v.Observed, strings.Join(v.Evidence, "\n"))}
		if v.Known != "" {
			c.SystemOut = "known finding: " + v.Known + "\n" + c.SystemOut
		}
		switch {
		case v.Status == result.NotConverged:
			c.Error = &junitDetail{Message: "not converged: " + v.Observed, Type: "not-converged", Body: c.SystemOut}
		case v.UnexpectedPass():
			c.Failure = &junitDetail{Message: "unexpected pass of a known finding: " + v.Observed, Type: "unexpected-pass", Body: c.SystemOut}
		case !v.Match:
			c.Failure = &junitDetail{Message: fmt.Sprintf("%s: expected %s, observed %s", v.Status, v.Expected, v.Observed), Type: string(v.Status), Body: c.SystemOut}
		}
		s.Cases = append(s.Cases, c)
	}
	for _, c := range s.Cases {
		s.Tests++
		if c.Failure != nil {
			s.Failures++
		}
		if c.Error != nil {
			s.Errors++
		}
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// WriteJUnit writes one JUnit file covering the given runs.
func WriteJUnit(path string, results ...*result.Result) error {
	var all junitSuites
	for _, r := range results {
		s := junitFor(r)
		all.Suites = append(all.Suites, s)
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
	}
	b, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}
