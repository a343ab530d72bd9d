// Package confkit is the one way the three daemons read their configuration:
// a strict YAML loader, the Duration and Auth value types, and the slog
// logger builder.
//
// The loader's rules (Parse, Load):
//   - exactly one YAML document: an empty file, an empty document and a
//     second document are errors;
//   - every key must be a field of the target struct (by yaml tag); a key
//     given twice is an error;
//   - problems are one-line "file:line: key.path: message" errors, all of them
//     at once, as an ErrorList; a validator places its own problems with
//     Meta.Errorf("masters[0].quorum", ...);
//   - renamed keys keep working through Alias: the file is read as if it
//     used the new name and Meta.Deprecations lists each use, which the
//     caller logs once as a warning;
//   - time.Duration and Duration fields take "250ms", "1s", "2m" or whole
//     milliseconds (see Duration);
//   - the target holds the defaults before Parse: a key given (even as 0)
//     overrides, an absent key or a null keeps the default; Meta.Given tells
//     them apart.
//
// # Adopting confkit
//
// In components/<x>/config:
//
//  1. Keep the schema struct and its yaml tags (the keys do not change).
//     Replace the component's own Duration with confkit.Duration (or keep
//     time.Duration fields: the loader reads them the same way), and
//     user/password pairs with confkit.Auth where the file nests them
//     (proxy: auth, sentinel_auth).
//  2. Replace the yaml.NewDecoder/KnownFields/Decode code with
//     c := DefaultConfig(); meta, err := confkit.Load(path, &c, aliases...).
//     The empty-file and second-document rules are now the same for all
//     three (redisha-proxy used to accept an empty file; it still runs with
//     no --config at all).
//  3. List every key that was renamed as an Alias, so old files keep working:
//     confkit.AuthAliases("auth", "sentinel_auth") keeps the proxy's
//     "username"; a flat key moving into a section is
//     {Old: "masters[].auth_pass", New: "masters[].auth.password"}.
//  4. In Validate, report problems as meta.Errorf(path, ...) collected in a
//     confkit.ErrorList (return list.Err()), so they carry file and line.
//  5. Build the logger with confkit.NewLogger(level, format, os.Stderr), or
//     NewReloadableLogger when a reload may change the level. Levels: debug,
//     info, warn (warning), error in any case; formats text, json; "" is
//     info/text, so a component whose default is json (the proxy) sets it
//     in its defaults.
//  6. Return meta.Deprecations (as strings) from the daemon's load function;
//     daemonkit logs each once.
//  7. Tests that matched yaml's wording ("field listen_addr not found") now
//     match confkit's ("listen_addr: unknown key"); the line and key are
//     still in the message, so keep asserting both.
package confkit
