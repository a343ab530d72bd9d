package daemonkit

import (
	"fmt"
	"strconv"
	"strings"
)

// subcommands are the words normalize treats as a subcommand.
var subcommands = map[string]bool{"run": true, "check-config": true, "status": true, "version": true, "help": true}

// flagKinds lists the long flags a daemon accepts: true takes a value.
func (d *Daemon[C]) flagKinds() map[string]bool {
	k := map[string]bool{"config": true, "addr": true, "json": false, "help": false, "version": false}
	for _, f := range d.Flags {
		k[f.Name] = !f.Bool
	}
	return k
}

// normalize turns a legacy command line into the new one, before cobra sees
// it. It returns the new arguments and, when the old form was used, a
// one-line deprecation warning that gives the new form.
//
// The rewrites, which cover every invocation the three mains accepted:
//   - Go-flag style single-dash long flags ("-config F", "-listen=X",
//     "-admin-pprof") become "--config F", ...; pflag would read "-config" as
//     "-c onfig". Single-letter flags ("-c F", "-h") are left as they are.
//   - "-check-config" / "-check" (either dash count, "=true" or "=false")
//     become the check-config subcommand.
//   - No subcommand: "run" is put first (or check-config, above), unless the
//     line asks for --help or --version. An empty command line runs only when
//     BareRuns is set (redisha-proxy and redisha-witness ran; redisha-vip
//     printed its help).
func (d *Daemon[C]) normalize(args []string) ([]string, string, error) {
	kinds := d.flagKinds()
	var out []string
	sub, check, helpish, legacy := "", false, false, false
	if len(args) == 0 {
		if !d.BareRuns {
			return nil, "", nil
		}
		return []string{"run"}, fmt.Sprintf("running %s with no subcommand is deprecated; use %q", d.Name, d.Name+" run"), nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			if sub == "" && subcommands[a] {
				sub = a
			}
			out = append(out, a)
			continue
		}
		dashes := 1
		if strings.HasPrefix(a, "--") {
			dashes = 2
		}
		name, val, hasVal := strings.Cut(a[dashes:], "=")
		if _, own := kinds[name]; !own && (name == "check-config" || name == "check") {
			v := true
			if hasVal {
				b, err := strconv.ParseBool(val)
				if err != nil {
					return nil, "", fmt.Errorf("invalid boolean value %q for %s", val, a)
				}
				v = b
			}
			check = check || v
			legacy = true
			continue
		}
		if name == "h" || name == "help" || name == "version" {
			helpish = true
		}
		takesValue, known := kinds[name]
		// A single-dash long name is Go flag syntax; pflag would read it as
		// a cluster of shorthands. An unknown one is rewritten too, so the
		// error says "unknown flag: --name", except "-c<file>" (pflag's
		// shorthand with its value attached, which redisha-vip accepted).
		if dashes == 1 && len(name) > 1 && (known || !strings.HasPrefix(name, "c")) {
			a = "-" + a
			legacy = true
		}
		if dashes == 1 && len(name) == 1 && name == "c" {
			takesValue, known = true, true
		}
		out = append(out, a)
		// Copy a flag's value as it is, so a value that looks like a flag or
		// a subcommand ("-config run") is not rewritten.
		if known && takesValue && !hasVal && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	switch {
	case sub != "" && check:
		return nil, "", fmt.Errorf("-check-config/-check cannot be combined with the %s subcommand; use %s check-config", sub, d.Name)
	case sub == "" && check:
		out = append([]string{"check-config"}, out...)
	case sub == "" && !helpish:
		out = append([]string{"run"}, out...)
		legacy = true
	}
	if !legacy {
		return out, "", nil
	}
	return out, fmt.Sprintf("%q is deprecated; use %q", d.Name+" "+strings.Join(args, " "), d.Name+" "+strings.Join(out, " ")), nil
}
