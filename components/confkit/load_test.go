package confkit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// schema is a config shaped like the three daemons' files: nested mappings,
// lists of structs, pointers for "unset", both Duration types, Auth.
type schema struct {
	Listen   string         `yaml:"listen"`
	Backends []string       `yaml:"backends"`
	Check    checkSection   `yaml:"check"`
	Preempt  *bool          `yaml:"preempt"`
	Repeat   *Duration      `yaml:"repeat"`
	Auth     Auth           `yaml:"auth"`
	Masters  []master       `yaml:"masters"`
	Log      logSection     `yaml:"log"`
	Labels   map[string]int `yaml:"labels"`
	Any      any            `yaml:"any"`
	Untagged int
	Skipped  int `yaml:"-"`
	inline   `yaml:",inline"`
}

type inline struct {
	Extra string `yaml:"extra"`
}

type checkSection struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  Duration      `yaml:"timeout"`
}

type master struct {
	Name      string   `yaml:"name"`
	DownAfter Duration `yaml:"down_after"`
	Auth      Auth     `yaml:"auth"`
}

type logSection struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

func defaults() schema {
	return schema{Listen: "127.0.0.1:6379", Check: checkSection{Interval: time.Second, Timeout: Duration(500 * time.Millisecond)},
		Log: logSection{Level: "info", Format: "json"}}
}

var aliases = []Alias{
	{Old: "log_level", New: "log.level"},
	{Old: "log_format", New: "log.format"},
	{Old: "masters[].auth_pass", New: "masters[].auth.password"},
	{Old: "masters[].auth_user", New: "masters[].auth.user"},
	{Old: "check.period", New: "check.interval"},
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, yaml string
		check      func(t *testing.T, s schema, m *Meta)
	}{
		{"defaults kept, explicit zero overrides", "check:\n  timeout: 0s\n", func(t *testing.T, s schema, m *Meta) {
			if s.Listen != "127.0.0.1:6379" || s.Check.Interval != time.Second || s.Check.Timeout != 0 || !m.Given("check.timeout") || m.Given("check.interval") {
				t.Fatalf("%+v", s)
			}
		}},
		{"durations: go forms and bare milliseconds", "check:\n  interval: 1500\n  timeout: 2m\nrepeat: 0\n", func(t *testing.T, s schema, m *Meta) {
			if s.Check.Interval != 1500*time.Millisecond || s.Check.Timeout.D() != 2*time.Minute || s.Repeat == nil || *s.Repeat != 0 {
				t.Fatalf("%+v", s)
			}
		}},
		{"null leaves defaults and clears pointers", "check:\nrepeat:\nlisten:\n", func(t *testing.T, s schema, m *Meta) {
			if s.Check.Interval != time.Second || s.Repeat != nil || s.Listen != "127.0.0.1:6379" {
				t.Fatalf("%+v", s)
			}
		}},
		{"pointer set", "preempt: false\n", func(t *testing.T, s schema, m *Meta) {
			if s.Preempt == nil || *s.Preempt {
				t.Fatalf("%+v", s)
			}
		}},
		{"lists, maps, any, untagged, inline", "backends: [a:1, b:2]\nlabels: {x: 1}\nany: {free: [form]}\nuntagged: 3\nextra: e\n", func(t *testing.T, s schema, m *Meta) {
			if len(s.Backends) != 2 || s.Labels["x"] != 1 || s.Any == nil || s.Untagged != 3 || s.Extra != "e" || m.Line("backends[1]") != 1 {
				t.Fatalf("%+v", s)
			}
		}},
		{"deprecated keys move and are reported", "log_level: debug\nmasters:\n  - name: m\n    auth_pass: secret\n    auth_user: u\n", func(t *testing.T, s schema, m *Meta) {
			if s.Log.Level != "debug" || s.Log.Format != "json" || s.Masters[0].Auth.Password != "secret" || s.Masters[0].Auth.User != "u" {
				t.Fatalf("%+v", s)
			}
			var got []string
			for _, d := range m.Deprecations {
				got = append(got, d.String())
			}
			want := []string{
				"f.yaml:1: log_level: deprecated key, write log.level instead (it still works for now)",
				"f.yaml:4: masters[0].auth_pass: deprecated key, write masters[0].auth.password instead (it still works for now)",
				"f.yaml:5: masters[0].auth_user: deprecated key, write masters[0].auth.user instead (it still works for now)",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("deprecations:\n%s", strings.Join(got, "\n"))
			}
		}},
		{"alias renamed within a mapping", "check:\n  period: 2s\n", func(t *testing.T, s schema, m *Meta) {
			if s.Check.Interval != 2*time.Second || len(m.Deprecations) != 1 || !m.Given("check.interval") {
				t.Fatalf("%+v %+v", s, m.Deprecations)
			}
		}},
		{"alias into a null mapping", "log:\nlog_format: text\n", func(t *testing.T, s schema, m *Meta) {
			if s.Log.Format != "text" || s.Log.Level != "info" {
				t.Fatalf("%+v", s)
			}
		}},
		{"new names give no deprecation", "log:\n  level: warn\n", func(t *testing.T, s schema, m *Meta) {
			if len(m.Deprecations) != 0 || s.Log.Level != "warn" {
				t.Fatalf("%+v", m.Deprecations)
			}
		}},
		{"anchors and merge keys", "base: &b {name: x, down_after: 5s}\n", nil},
		{"document end marker", "listen: a:1\n...\n", func(t *testing.T, s schema, m *Meta) {
			if s.Listen != "a:1" {
				t.Fatalf("%+v", s)
			}
		}},
		{"merge keys, explicit wins", "masters:\n  - &m {name: a, down_after: 5s}\n  - <<: *m\n    name: b\n", func(t *testing.T, s schema, m *Meta) {
			if len(s.Masters) != 2 || s.Masters[1].Name != "b" || s.Masters[1].DownAfter.D() != 5*time.Second {
				t.Fatalf("%+v", s)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.check == nil {
				t.Skip()
			}
			s := defaults()
			m, err := Parse("f.yaml", []byte(tc.yaml), &s, aliases...)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s, m)
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"empty file", "", "f.yaml: the file is empty"},
		{"comments only", "# nothing\n", "f.yaml: the file is empty"},
		{"empty document", "---\n", "the document is empty"},
		{"null document", "~\n", "f.yaml:1: the document is empty"},
		{"second document", "listen: a:1\n---\nlisten: b:2\n", "f.yaml:3: a second YAML document"},
		{"second empty document", "listen: a:1\n---\n# x\n", "a second YAML document"},
		{"unknown key", "listen: a:1\nlisten_addr: x\n", "f.yaml:2: listen_addr: unknown key"},
		{"unknown nested key, suggestion", "check:\n  intervall: 1s\n", "f.yaml:2: check.intervall: unknown key (did you mean interval?)"},
		{"unknown key in a list element", "masters:\n  - name: a\n  - nmae: b\n", "f.yaml:3: masters[1].nmae: unknown key (did you mean name?)"},
		{"unknown key inside auth", "auth:\n  pass: x\n", "f.yaml:2: auth.pass: unknown key"},
		{"skipped field is unknown", "skipped: 1\n", "f.yaml:1: skipped: unknown key"},
		{"duplicate key", "listen: a:1\nlisten: b:2\n", "f.yaml:2: listen: given twice (first at line 1)"},
		{"bad duration", "check:\n  interval: fast\n", `f.yaml:2: check.interval: "fast" is not a duration: want 250ms, 1s, 2m or whole milliseconds`},
		{"bad Duration", "check:\n  timeout: 1.5\n", `f.yaml:2: check.timeout: "1.5" is not a duration`},
		{"duration overflow", "check:\n  timeout: 99999999999999999\n", "check.timeout: 99999999999999999 milliseconds is out of range"},
		{"duration as a list", "check:\n  timeout: [1s]\n", "f.yaml:2: check.timeout: want a duration like 250ms, 1s, 2m or whole milliseconds, got a list"},
		{"wrong scalar type", "preempt: maybe\n", "f.yaml:1: preempt: cannot unmarshal !!str `maybe` into bool"},
		{"list where a string goes", "listen: [a]\n", "f.yaml:1: listen: cannot unmarshal !!seq into string"},
		{"scalar where a list goes", "backends: a:1\n", `f.yaml:1: backends: want a list, got "a:1"`},
		{"scalar where a mapping goes", "check: 1s\n", `f.yaml:1: check: want a mapping of keys, got "1s"`},
		{"top level not a mapping", "- a\n", "f.yaml:1: want a mapping of keys, got a list"},
		{"syntax error", "backends: [\n", "f.yaml:1: YAML syntax: did not find expected node content"},
		{"tab indentation", "check:\n\tinterval: 1s\n", "f.yaml:2: YAML syntax:"},
		{"both old and new key", "log_level: debug\nlog:\n  level: info\n", "f.yaml:1: log_level: deprecated name of log.level, which is also given (line 3); keep only log.level"},
		{"alias target not a mapping", "log: text\nlog_level: debug\n", "f.yaml:1: log: want a mapping (to hold log.level, the new name of log_level)"},
		{"several problems, one line", "listen_addr: x\ncheck:\n  interval: fast\n", "f.yaml:1: listen_addr: unknown key; f.yaml:3: check.interval:"},
		{"bad merge", "masters:\n  - <<: 3\n    name: a\n", "a merge key wants a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults()
			_, err := Parse("f.yaml", []byte(tc.yaml), &s, aliases...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			var l ErrorList
			if !errors.As(err, &l) || len(l) == 0 {
				t.Fatalf("error %T is not an ErrorList", err)
			}
		})
	}
}

// laughs is a document of nested aliases that expands to 10^9 strings.
func laughs() string {
	var b strings.Builder
	b.WriteString("defs:\n")
	b.WriteString(" l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		b.WriteString(" l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("deep: *l9\n")
	return b.String()
}

func TestBillionLaughs(t *testing.T) {
	var deep struct {
		Defs any                        `yaml:"defs"`
		Deep [][][][][][][][][][]string `yaml:"deep"`
	}
	_, err := Parse("f.yaml", []byte(laughs()), &deep)
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("got %v", err)
	}
}

func TestBadAliases(t *testing.T) {
	for _, a := range []Alias{
		{Old: "", New: "x"},
		{Old: "a", New: "a"},
		{Old: "a[]", New: "b"},
		{Old: "a[].b", New: "c.b"},
		{Old: "a[].b", New: "a[]"},
		{Old: "a.b", New: "c[].b"},
		{Old: "a..b", New: "c"},
	} {
		s := defaults()
		if _, err := Parse("f.yaml", []byte("listen: x\n"), &s, a); err == nil || !strings.Contains(err.Error(), "confkit: alias") && !strings.Contains(err.Error(), "empty path") {
			t.Errorf("alias %+v accepted: %v", a, err)
		}
	}
}

func TestParseNeedsPointer(t *testing.T) {
	if _, err := Parse("f", []byte("a: 1\n"), schema{}); err == nil {
		t.Fatal("non-pointer accepted")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("listen: a:1\nbogus: 1\n"), 0o644)
	s := defaults()
	_, err := Load(p, &s)
	if err == nil || err.Error() != p+":2: bogus: unknown key" {
		t.Fatalf("got %v", err)
	}
	_, err = Load(p+".missing", &s)
	if err == nil || err.Error() != p+".missing: no such file or directory" {
		t.Fatalf("got %v", err)
	}
}

func TestMetaErrorf(t *testing.T) {
	s := defaults()
	m, err := Parse("f.yaml", []byte("listen: a:1\nmasters:\n  - name: a\n    down_after: 5s\n"), &s)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"masters[0].down_after": "f.yaml:4: masters[0].down_after: bad",
		"masters[0].quorum":     "f.yaml:3: masters[0].quorum: bad", // absent: its list item's line
		"check.interval":        "f.yaml: check.interval: bad",
	} {
		if got := m.Errorf(path, "bad").Error(); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	var l ErrorList
	if l.Err() != nil {
		t.Fatal("empty list is an error")
	}
	l = append(l, m.Errorf("listen", "x"), m.Errorf("masters", "y"))
	if got := Lines(l.Err()); len(got) != 2 || got[1] != "f.yaml:2: masters: y" {
		t.Fatalf("%q", got)
	}
	if got := Lines(errors.Join(errors.New("a\nb"), l)); len(got) != 3 || got[0] != "a b" {
		t.Fatalf("%q", got)
	}
}
