package config

import (
	"os"
	"testing"
)

func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../dist/redisha-proxy.example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("backends: [127.0.0.1:6379]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid config: %v", err)
		}
		_ = c.CoreConfig()
	})
}
