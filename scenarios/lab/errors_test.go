package lab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// The error paths a user meets first: each is one line and says what to do.
func TestPreflightErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	// A socket path that exists but where nobody listens, and one that does not exist.
	dead := dir + "/docker.sock"
	if err := os.WriteFile(dead, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"non-root", checkRoot(1000), []string{"needs root", "run it as root"}},
		{"root", checkRoot(0), nil},
		{"no engine (missing socket)", checkDocker(ctx, "unix://"+dir+"/missing.sock"), []string{"no Docker engine answers", "make deps"}},
		{"no engine (dead socket)", checkDocker(ctx, "unix://"+dead), []string{"no Docker engine answers", "make deps"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == nil {
				if tt.err != nil {
					t.Fatalf("unexpected error %v", tt.err)
				}
				return
			}
			if tt.err == nil {
				t.Fatal("no error")
			}
			msg := tt.err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			t.Log(msg)
		})
	}
}

// Preflight as a whole, with a non-root user: Up refuses before touching anything.
func TestUpAsNonRoot(t *testing.T) {
	old := geteuid
	geteuid = func() int { return 1000 }
	defer func() { geteuid = old }()
	stack, err := LoadStack("reference")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Up(context.Background(), stack, Params{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "needs root") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Up as non-root: %v", err)
	}
	if _, err := GC(context.Background(), GCOptions{}); err == nil || !strings.Contains(err.Error(), "needs root") {
		t.Fatalf("GC as non-root: %v", err)
	}
}

func TestUpWithoutDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/none.sock")
	old := geteuid
	geteuid = func() int { return 0 }
	defer func() { geteuid = old }()
	stack, _ := LoadStack("reference")
	_, err := Up(context.Background(), stack, Params{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "no Docker engine answers") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Up without docker: %v", err)
	}
}

func TestLabNames(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"demo", "rhl-demo", ""},
		{"rhl-abc123", "rhl-abc123", ""},
		{"Demo", "", "lower-case"},
		{"waytoolongname", "", "1 to 8"},
		{"a_b", "", "1 to 8"},
	} {
		got, err := normalizeName(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if n, _ := normalizeName(""); !labNameRE.MatchString(n) || len(clientVeth(n)) > 15 {
		t.Errorf("generated name %q", n)
	}
}
