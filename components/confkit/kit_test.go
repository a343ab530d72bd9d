package confkit

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	_ flag.Value               = (*Duration)(nil)
	_ encoding.TextUnmarshaler = (*Duration)(nil)
	_ encoding.TextMarshaler   = Duration(0)
	_ yaml.Unmarshaler         = (*Duration)(nil)
	_ Finisher                 = (*Auth)(nil)
	_ slog.LogValuer           = Auth{}
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"250ms", 250 * time.Millisecond, false},
		{"1s", time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"1.5s", 1500 * time.Millisecond, false},
		{"0", 0, false},                          // vip and witness took it
		{"0s", 0, false},                         // all three
		{"1500", 1500 * time.Millisecond, false}, // witness: bare milliseconds
		{"+20", 20 * time.Millisecond, false},    // strconv.ParseInt, as the witness
		{"-5", -5 * time.Millisecond, false},     // negative: the component's validator decides
		{"-1s", -time.Second, false},
		{"", 0, true},
		{"fast", 0, true},
		{"1.5", 0, true},   // a unitless fraction is neither form
		{"1_000", 0, true}, // yaml int spelling that no loader took
		{"0x10", 0, true},
		{" 1s", 0, true}, // no loader trimmed
		{"1e3", 0, true},
		{"99999999999999999", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
		var d Duration
		if err2 := d.Set(tc.in); (err2 != nil) != tc.err || d.D() != tc.want {
			t.Errorf("Set(%q) = %v, %v", tc.in, d, err2)
		}
		var y struct {
			D Duration `yaml:"d"`
		}
		_, err3 := Parse("f", []byte(fmt.Sprintf("d: %q\n", tc.in)), &y)
		if (err3 != nil) != tc.err || y.D.D() != tc.want {
			t.Errorf("yaml %q = %v, %v", tc.in, y.D, err3)
		}
	}
}

func TestDurationRoundTrips(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond, 1500 * time.Millisecond, 2 * time.Minute, 90 * time.Minute, -time.Second} {
		b, err := Duration(d).MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back.D() != d {
			t.Errorf("%v -> %s -> %v, %v", d, b, back, err)
		}
		out, _ := yaml.Marshal(map[string]Duration{"d": Duration(d)})
		var y struct {
			D Duration `yaml:"d"`
		}
		if _, err := Parse("f", out, &y); err != nil || y.D.D() != d {
			t.Errorf("yaml %s: %v %v", out, y.D, err)
		}
		j, _ := json.Marshal(Duration(d))
		if string(j) != `"`+d.String()+`"` {
			t.Errorf("json %s", j)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var d Duration
	fs.Var(&d, "timeout", "")
	if err := fs.Parse([]string{"-timeout", "750"}); err != nil || d.D() != 750*time.Millisecond || d.Type() != "duration" {
		t.Fatalf("flag: %v %v", d, err)
	}
}

func writeSecret(t *testing.T, mode os.FileMode, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuth(t *testing.T) {
	type cfg struct {
		Auth Auth `yaml:"auth"`
	}
	tests := []struct {
		name, yaml   string
		wantUser     string
		wantPassword string
		wantErr      string
	}{
		{"inline", "auth: {user: u, password: p}\n", "u", "p", ""},
		{"password only", "auth: {password: p}\n", "", "p", ""},
		{"old proxy key username", "auth: {username: u, password: p}\n", "u", "p", ""},
		{"file 0600 newline stripped", "auth: {password_file: %s}\n", "", "s3cret", ""},
		{"file 0640", "auth: {password_file: %s}\n", "", "s3cret", ""},
		{"file 0400", "auth: {password_file: %s}\n", "", "s3cret", ""},
		{"file 0644 refused", "auth: {password_file: %s}\n", "", "", "f:1: auth.password_file: "},
		{"file 0660 refused", "auth: {password_file: %s}\n", "", "", "must be 0600 or 0640"},
		{"file 0700 refused", "auth: {password_file: %s}\n", "", "", "has mode 0700"},
		{"both", "auth: {password: p, password_file: %s}\n", "", "", "give password or password_file, not both"},
		{"missing file", "auth:\n  password_file: /nonexistent/pass\n", "", "", "f:2: auth.password_file: open /nonexistent/pass: no such file"},
		{"empty file", "auth: {password_file: %s}\n", "", "", "is empty"},
		{"a directory", "auth: {password_file: /}\n", "", "", "is not a regular file"},
	}
	modes := map[string]os.FileMode{"file 0640": 0o640, "file 0400": 0o400, "file 0644 refused": 0o644,
		"file 0660 refused": 0o660, "file 0700 refused": 0o700}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.yaml
			if strings.Contains(text, "%s") {
				mode, ok := modes[tc.name]
				if !ok {
					mode = 0o600
				}
				content := "s3cret\n"
				if tc.name == "empty file" {
					content = ""
				}
				text = fmt.Sprintf(text, writeSecret(t, mode, content))
			}
			var c cfg
			m, err := Parse("f", []byte(text), &c, AuthAliases("auth")...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Auth.User != tc.wantUser || c.Auth.Password != tc.wantPassword {
				t.Fatalf("got %q/%q", c.Auth.User, c.Auth.Password)
			}
			if tc.name == "old proxy key username" && (len(m.Deprecations) != 1 || m.Deprecations[0].New != "auth.user") {
				t.Fatalf("deprecations %+v", m.Deprecations)
			}
		})
	}
}

func TestAuthNeverPrintsThePassword(t *testing.T) {
	a := Auth{User: "u", Password: "hunter2"}
	type wrap struct{ A Auth }
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "auth", a)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "auth", a)
	j, _ := json.Marshal(wrap{a})
	for _, s := range []string{a.String(), fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a),
		fmt.Sprintf("%v %+v %#v", wrap{a}, wrap{a}, wrap{a}), logged.String(), string(j)} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("password printed: %s", s)
		}
		if !strings.Contains(s, "u") {
			t.Fatalf("user not printed: %s", s)
		}
	}
	if got := a.String(); got != `user "u", password set` {
		t.Fatalf("%q", got)
	}
	if got := (Auth{PasswordFile: "/p", Password: "x"}).String(); got != "password set (from /p)" {
		t.Fatalf("%q", got)
	}
	if got := (Auth{}).String(); got != "no auth" {
		t.Fatalf("%q", got)
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		json          bool
		enabled       slog.Level // lowest level that logs
		err           string
	}{
		{"", "", false, slog.LevelInfo, ""},
		{"debug", "text", false, slog.LevelDebug, ""},
		{"info", "json", true, slog.LevelInfo, ""},
		{"warn", "json", true, slog.LevelWarn, ""},
		{"warning", "text", false, slog.LevelWarn, ""}, // witness accepted it
		{"WARN", "JSON", true, slog.LevelWarn, ""},     // witness and vip: any case
		{"error", "text", false, slog.LevelError, ""},
		{"debug-4", "text", false, slog.LevelDebug - 4, ""},
		{"loud", "text", false, 0, `log level "loud" is not debug, info, warn or error`},
		{"info", "xml", false, 0, `log format "xml" is not text or json`},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		l, err := NewLogger(tc.level, tc.format, &buf)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s/%s: error %v, want %q", tc.level, tc.format, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.level, tc.format, err)
		}
		l.Log(context.Background(), tc.enabled-1, "below")
		l.Log(context.Background(), tc.enabled, "at")
		out := buf.String()
		if strings.Contains(out, "below") || !strings.Contains(out, "at") {
			t.Errorf("%s: level wrong: %q", tc.level, out)
		}
		if strings.HasPrefix(out, "{") != tc.json {
			t.Errorf("%s: format wrong: %q", tc.format, out)
		}
	}
	var buf bytes.Buffer
	l, lv, err := NewReloadableLogger("error", "text", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	lv.Set(slog.LevelInfo)
	l.Info("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Fatalf("%q", buf.String())
	}
}
