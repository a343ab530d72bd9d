package confkit

import (
	"strings"
	"testing"
)

// FuzzParse: no input panics the loader, and every error is one line that
// starts with the file name.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "---\n", "listen: a:1\n", "listen: a:1\n---\nx: 1\n", "check:\n  interval: 1500\n  timeout: 2m\n",
		"log_level: debug\nmasters:\n  - name: m\n    auth_pass: s\n", "masters:\n  - &m {name: a}\n  - <<: *m\n",
		"auth: {username: u, password_file: /nonexistent}\n", "labels: {a: 1, b: x}\n", "a: &a [*a]\n",
		"check: {period: 1s, interval: 2s}\n", "log: x\nlog_format: json\n", "backends: [\n", "\x00", "? [a]\n: b\n",
		laughs(),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := defaults()
		m, err := Parse("f.yaml", []byte(in), &s, append(aliases, AuthAliases("auth", "masters[].auth")...)...)
		if m == nil {
			t.Fatal("nil Meta")
		}
		for _, d := range m.Deprecations {
			if strings.ContainsAny(d.String(), "\r\n") {
				t.Fatalf("deprecation not one line: %q", d.String())
			}
		}
		if err == nil {
			return
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("error not one line: %q", msg)
		}
		for _, l := range Lines(err) {
			if !strings.HasPrefix(l, "f.yaml") || strings.ContainsAny(l, "\r\n") {
				t.Fatalf("bad problem line %q", l)
			}
		}
	})
}
