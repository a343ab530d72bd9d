package confkit

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration in a config file or on a flag: a Go duration
// ("250ms", "1s", "2m", "1h30m") or a whole number of milliseconds ("1500",
// as sentinel's *-milliseconds options and the witness's files always
// allowed). The two never overlap: a bare number has no unit and Go
// durations require one (except "0", which is 0 either way).
//
// What the old loaders accepted, all of which still parses the same:
// redisha-proxy (time.Duration fields) took Go duration strings only;
// redisha-vip took Go duration strings (so a bare 0 too); redisha-witness took
// Go duration strings and bare milliseconds.
type Duration time.Duration

// ParseDuration parses the text forms Duration accepts.
func ParseDuration(s string) (time.Duration, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms > math.MaxInt64/int64(time.Millisecond) || ms < math.MinInt64/int64(time.Millisecond) {
			return 0, fmt.Errorf("%s milliseconds is out of range", s)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: want 250ms, 1s, 2m or whole milliseconds", s)
	}
	return d, nil
}

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String prints the duration as Go does ("1.5s", "2m0s"); it parses back.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements yaml.Unmarshaler: a scalar in one of the forms
// ParseDuration accepts. (yaml leaves the value alone for a null.)
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration like 250ms, 1s, 2m or whole milliseconds, got %s", describe(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler (so YAML and JSON print "1s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Set implements flag.Value (and pflag.Value, with Type).
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// Type names the flag's value type in cobra's help (pflag.Value).
func (d *Duration) Type() string { return "duration" }
