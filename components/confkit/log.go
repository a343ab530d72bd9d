package confkit

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// ParseLevel reads a log level: debug, info, warn (or warning), error, in any
// case, and slog's offsets ("debug-4", "info+2"); "" is info. The union of
// what the three daemons accepted (the witness took "warning" and any case).
func ParseLevel(s string) (slog.Level, error) {
	if s == "" {
		return slog.LevelInfo, nil
	}
	t := strings.ToLower(s)
	if strings.HasPrefix(t, "warning") {
		t = "warn" + t[len("warning"):]
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(t)); err != nil {
		return 0, fmt.Errorf("log level %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// ParseFormat reads a log format, "text" or "json" in any case; "" is text.
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(s); f {
	case "":
		return "text", nil
	case "text", "json":
		return f, nil
	}
	return "", fmt.Errorf("log format %q is not text or json", s)
}

// NewLogger builds the daemons' slog logger writing to w, from the values of
// their log level and format keys (proxy and vip: log.level, log.format;
// witness: log_level, log_format). Defaults: info, text. A component whose
// default format is json passes "json" itself.
func NewLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	l, _, err := NewReloadableLogger(level, format, w)
	return l, err
}

// NewReloadableLogger is NewLogger that also returns the level variable, so a
// reload can change the level of the running logger (lv.Set(newLevel)).
func NewReloadableLogger(level, format string, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	l, err := ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	f, err := ParseFormat(format)
	if err != nil {
		return nil, nil, err
	}
	lv := new(slog.LevelVar)
	lv.Set(l)
	o := &slog.HandlerOptions{Level: lv}
	if f == "json" {
		return slog.New(slog.NewJSONHandler(w, o)), lv, nil
	}
	return slog.New(slog.NewTextHandler(w, o)), lv, nil
}
