package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("interface: eth0\nvrid: 1\npriority: 100\nvirtual_addresses: [10.78.0.100]\n"), 0o644)
	os.WriteFile(bad, []byte("interface: eth0\nvrid: 1\npriority: 100\nvirtual_addresses: [10.78.0.100]\nprioriti: 5\n"), 0o644)
	for _, tc := range []struct {
		file, want string
		ok         bool
	}{
		{good, "configuration OK", true},
		{bad, "field prioriti not found", false},
		{filepath.Join(dir, "missing.yaml"), "no such file", false},
		{"../../components/vip/dist/redisha-vip.example.yaml", "configuration OK", true},
	} {
		cmd := root()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs([]string{"check-config", "-c", tc.file})
		err := cmd.Execute()
		if (err == nil) != tc.ok || !strings.Contains(out.String()+errString(err), tc.want) {
			t.Errorf("%s: err=%v out=%q, want %q", tc.file, err, out.String(), tc.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
