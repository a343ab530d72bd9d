package confkit

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Auth is a Redis AUTH credential: an optional ACL user and a password given
// inline or read from a file.
//
//	auth:
//	  user: proxy             # optional (redis ACL user); "default" when empty
//	  password_file: /etc/redisha/proxy.pass
//
// Its String, GoString, LogValue and JSON form never show the password, so
// the config can be logged or served on /status as it is.
type Auth struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// PasswordFile is read when the config is loaded (so a SIGHUP reload
	// re-reads it). It must be a regular file with no permission bits beyond
	// 0640 (0600, 0640, 0400, 0440): group-writable or world-readable secrets
	// are refused. Trailing newlines are stripped.
	PasswordFile string `yaml:"password_file"`
}

// AuthAliases are the aliases that keep the old redisha-proxy key
// "username" working for each Auth at the given paths (such as "auth",
// "sentinel_auth").
func AuthAliases(paths ...string) []Alias {
	var out []Alias
	for _, p := range paths {
		out = append(out, Alias{Old: p + ".username", New: p + ".user"})
	}
	return out
}

// FinishConfig implements Finisher: it reads PasswordFile into Password.
func (a *Auth) FinishConfig() error {
	if a.PasswordFile == "" {
		return nil
	}
	if a.Password != "" {
		return &Error{Path: "password_file", Msg: "give password or password_file, not both"}
	}
	pw, err := ReadSecretFile(a.PasswordFile)
	if err != nil {
		return &Error{Path: "password_file", Msg: err.Error()}
	}
	a.Password = pw
	return nil
}

// ReadSecretFile reads a password file, refusing one that others can read or
// anyone but its owner can write (mode bits beyond 0640), and strips trailing
// newlines.
func ReadSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&^0o640 != 0 {
		return "", fmt.Errorf("%s has mode %04o; a password file must be 0600 or 0640 (chmod 0600 %s)", path, perm, path)
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for b.Len() <= 64<<10 {
		n, err := f.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if b.Len() > 64<<10 {
		return "", fmt.Errorf("%s is larger than 64 KiB; not a password file", path)
	}
	s := strings.TrimRight(b.String(), "\r\n") // as redisha-guard reads its password files
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// IsZero reports whether no credential is configured.
func (a Auth) IsZero() bool { return a.User == "" && a.Password == "" && a.PasswordFile == "" }

// String describes the credential without the password:
// `user "proxy", password set (from /etc/redisha/proxy.pass)`.
func (a Auth) String() string {
	if a.IsZero() {
		return "no auth"
	}
	var parts []string
	if a.User != "" {
		parts = append(parts, fmt.Sprintf("user %q", a.User))
	}
	switch {
	case a.PasswordFile != "":
		parts = append(parts, fmt.Sprintf("password set (from %s)", a.PasswordFile))
	case a.Password != "":
		parts = append(parts, "password set")
	default:
		parts = append(parts, "no password")
	}
	return strings.Join(parts, ", ")
}

// GoString keeps %#v from printing the password.
func (a Auth) GoString() string { return "confkit.Auth{" + a.String() + "}" }

// LogValue keeps slog from printing the password.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", a.User), slog.Bool("password_set", a.Password != ""),
		slog.String("password_file", a.PasswordFile))
}

// MarshalJSON keeps a JSON dump (a /status page) from printing the password.
func (a Auth) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		User         string `json:"user,omitempty"`
		PasswordSet  bool   `json:"password_set"`
		PasswordFile string `json:"password_file,omitempty"`
	}{a.User, a.Password != "", a.PasswordFile})
}
