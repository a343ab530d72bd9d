package confkit

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one configuration problem, printed as one line:
// "file:line: key.path: message" (parts that are unknown are left out).
type Error struct {
	File string // the file name as given to Load or Parse
	Line int    // 1-based; 0 when the problem has no place in the file
	Path string // the key path, such as "check.interval" or "masters[0].address"
	Msg  string
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(oneLine(e.Msg))
	return b.String()
}

// ErrorList is every problem found in one file, in file order. Its Error is
// one line (the problems joined by "; "); range over it to print one per line.
type ErrorList []*Error

// Error implements error.
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.As find each *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Err is nil for an empty list and the list otherwise, so a validator can
// collect problems and end with "return problems.Err()".
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Lines splits any error into its one-line problems: the entries of an
// ErrorList, the parts of an errors.Join, or the error itself. check-config
// prints one problem per line with it.
func Lines(err error) []string {
	if err == nil {
		return nil
	}
	var l ErrorList
	if errors.As(err, &l) && len(l) > 0 && err.Error() == l.Error() {
		out := make([]string, len(l))
		for i, e := range l {
			out[i] = e.Error()
		}
		return out
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, Lines(e)...)
		}
		return out
	}
	return []string{oneLine(err.Error())}
}

// oneLine folds a message onto one line: a config error is one log line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	f := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return strings.Join(f, " ")
}
