package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/vip/config"
)

func TestRunCheck(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	self, _ := os.ReadFile("/proc/self/comm")
	dir := t.TempDir()
	flag := filepath.Join(dir, "up")
	base := config.Track{Name: "x", Timeout: config.Duration(2 * time.Second)}
	with := func(f func(*config.Track)) config.Track { c := base; f(&c); return c }
	for _, tc := range []struct {
		name  string
		track config.Track
		setup func()
		ok    bool
	}{
		{"http 200", with(func(c *config.Track) { c.HTTP = srv.URL }), func() { healthy = true }, true},
		{"http 503", with(func(c *config.Track) { c.HTTP = srv.URL }), func() { healthy = false }, false},
		{"http refused", with(func(c *config.Track) { c.HTTP = "http://127.0.0.1:1/" }), nil, false},
		{"process running", with(func(c *config.Track) { c.Process = strings.TrimSpace(string(self)) }), nil, true},
		{"process missing", with(func(c *config.Track) { c.Process = "no-such-process-rhv" }), nil, false},
		{"command ok", with(func(c *config.Track) { c.Command = []string{"test", "-e", flag} }), func() { os.WriteFile(flag, nil, 0o644) }, true},
		{"command fails", with(func(c *config.Track) { c.Command = []string{"test", "-e", flag} }), func() { os.Remove(flag) }, false},
		{"command timeout", with(func(c *config.Track) {
			c.Command = []string{"sleep", "5"}
			c.Timeout = config.Duration(50 * time.Millisecond)
		}), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			err := runCheck(context.Background(), tc.track)
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v err=%v", tc.ok, err)
			}
		})
	}
}
