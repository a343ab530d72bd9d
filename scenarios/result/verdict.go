package result

import "fmt"

// Status is a checker's verdict.
type Status string

// Statuses.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	// Unknown means the checker could not decide (e.g. a linearizability search timed out).
	Unknown Status = "unknown"
	// NotConverged means the final state could not be read reliably, so no count is given.
	NotConverged Status = "not-converged"
)

// Verdict is one checker's judgement with the numbers and the records behind it.
type Verdict struct {
	Check    string             `json:"check"`
	Status   Status             `json:"status"`
	Expected string             `json:"expected"`
	Observed string             `json:"observed"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Evidence []string           `json:"evidence,omitempty"`
}

// Judged is a verdict set against what was expected of it.
type Judged struct {
	Verdict
	// Want is the status that counts as matching: pass, or a known finding's status.
	Want Status `json:"want"`
	// Known is the reason from the stack's known-verdicts file, when the expectation is a finding.
	Known string `json:"known,omitempty"`
	// Match reports whether Status equals Want.
	Match bool `json:"match"`
}

// UnexpectedPass reports a known finding that did not show: the stack changed, so its
// known-verdicts file must be looked at.
func (j Judged) UnexpectedPass() bool {
	return !j.Match && j.Want != Pass && j.Status == Pass
}

// Outcome of a run as a whole.
type Outcome string

// Outcomes.
const (
	// OutcomePass: every verdict matched its expectation (known findings included).
	OutcomePass Outcome = "pass"
	// OutcomeFail: a regression or an unexpected pass.
	OutcomeFail Outcome = "fail"
	// OutcomeError: the harness could not judge (Docker, time-out, not converged).
	OutcomeError Outcome = "error"
)

// Fold folds verdicts (and a harness error) into a run's outcome with the reasons behind it:
// error when the run could not be judged, fail on a regression or an unexpected pass, pass
// otherwise.
func Fold(vs []Judged, harnessErr string) (Outcome, []string) {
	var errs, fails []string
	if harnessErr != "" {
		errs = append(errs, "harness error: "+harnessErr)
	}
	for _, v := range vs {
		switch {
		case v.Status == NotConverged:
			errs = append(errs, v.Check+": not converged: "+v.Observed)
		case v.Match:
		case v.UnexpectedPass():
			fails = append(fails, fmt.Sprintf("%s: unexpected pass of a known finding (%s): %s", v.Check, v.Known, v.Observed))
		default:
			fails = append(fails, fmt.Sprintf("%s: %s: expected %s, observed %s", v.Check, v.Status, v.Expected, v.Observed))
		}
	}
	switch {
	case len(errs) > 0:
		return OutcomeError, append(errs, fails...)
	case len(fails) > 0:
		return OutcomeFail, fails
	}
	return OutcomePass, nil
}

// ExitCode maps outcomes to the CLI's exit status: 2 if any run errored, else 1 if any failed,
// else 0.
func ExitCode(outcomes ...Outcome) int {
	code := 0
	for _, o := range outcomes {
		switch o {
		case OutcomeError:
			return 2
		case OutcomeFail:
			code = 1
		}
	}
	return code
}
