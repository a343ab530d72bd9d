// Package daemonkit is the one command line of the three daemons
// (redisha-proxy, redisha-vip, redisha-witness), on cobra:
//
//	redisha-x run          [--config FILE] [component flags]   run until SIGTERM/SIGINT
//	redisha-x check-config [--config FILE] [component flags]   validate and exit
//	redisha-x status       [--config FILE] [--addr H:P] [--json]
//	redisha-x version                                          (also --version)
//
// --config (-c) is a persistent flag, so it may come before or after the
// subcommand. Exit codes: 0 ok, 1 the daemon failed (or status could not reach
// it), 2 bad command line or bad configuration; every configuration problem
// is printed on its own line, "redisha-x: file:line: key: message".
//
// It owns the signals: SIGINT and SIGTERM cancel Run's context (later ones
// are ignored while Run stops, as before); SIGHUP loads the file again and
// calls Reload, keeping the running configuration when either fails, and
// sets the logger's new level. Without Reload SIGHUP is not caught.
// Deprecation warnings (legacy command line, deprecated config keys,
// deprecated flags) are logged once each, as warnings, by the daemon's
// logger (on stderr before there is one).
//
// # Legacy command lines
//
// Every invocation that worked before keeps working, with one deprecation
// line that gives the new form:
//
//	redisha-proxy -config F                  -> run --config F            (proxy.service, lab stack)
//	redisha-proxy -config F -check-config    -> check-config --config F   (proxy.service ExecStartPre)
//	redisha-proxy -listen A -admin B -backends C -log-level L ...
//	                                         -> run --listen A ...        (components/proxy/bench)
//	  (-read-only-listen, -master-name, -sentinels, -admin-pprof too: the
//	  proxy passes them as Flags; they override the file, as before)
//	redisha-proxy                            -> run (defaults, no file)
//	redisha-witness -config F                -> run --config F            (witness.service, lab stack)
//	redisha-witness -config F -check         -> check-config --config F   (witness.service ExecStartPre)
//	redisha-witness                          -> run (--config /etc/redisha/witness.yaml)
//	redisha-vip run -c F, check-config -c F, status [-c F] [--addr A] [--json]
//	                                         unchanged, no warning        (vip.service, lab stack)
//	redisha-x --config F / -config F         -> run --config F            (any of the three)
//
// Go flag's spellings are all accepted: one or two dashes, "-config=F",
// "-check-config=false".
//
// # Adopting daemonkit
//
// cmd/redisha-<x>/main.go becomes a Daemon literal and a call to Main:
//
//	func main() { daemon().Main() }
//
//	func daemon() *daemonkit.Daemon[config.Config] {
//		return &daemonkit.Daemon[config.Config]{
//			Name: "redisha-witness", Short: "...", Version: version,
//			DefaultConfig: "/etc/redisha/witness.yaml", // proxy: "" (it runs on flags alone)
//			BareRuns:      true,                       // proxy, witness: true; vip: false
//			CheckOK:       "config ok",                // proxy "configuration ok", vip "configuration OK"
//			Load:          config.Load,                // (*Config, deprecations []string, error) via confkit
//			LogSettings:   func(c *config.Config) (string, string) { return c.LogLevel, c.LogFormat },
//			Run:           daemon.Run,                 // func(ctx, cfg, log) error: return once stopped
//			Reload:        nil,                        // proxy: p.Reload (SIGHUP)
//			Status:        printStatus,                // vip: today's status code
//		}
//	}
//
// The proxy lists its override flags as Flags (Name "listen", Apply sets
// cfg.Listen; "backends" splits on commas; "admin-pprof" is Bool) and moves
// Derive+Validate into Validate, so flags apply before validation on every
// load, reloads included. Tests drive Execute(ctx, args, stdout, stderr) and
// check its exit code, as the table in daemonkit_test.go does for every
// legacy invocation. Go's default SIGHUP action (exit) is kept for daemons
// without Reload; a daemon that must survive SIGHUP sets Reload.
package daemonkit
