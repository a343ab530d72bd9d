package confkit

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Alias keeps a renamed key working: a file that still says Old is read as
// if it said New, and the loader reports a Deprecation for it.
//
// Paths are dot-separated keys from the top of the file; "name[]" steps into
// every element of the list under name. Everything up to the last "[]" must be
// the same in Old and New (a key moves within one list element), and after it
// the key may move anywhere, into mappings that are created as needed:
//
//	{Old: "log_level", New: "log.level"}
//	{Old: "masters[].auth_pass", New: "masters[].auth.password"}
type Alias struct{ Old, New string }

// Deprecation says that the file used a deprecated key name. Callers log each
// once as a warning (daemonkit does).
type Deprecation struct {
	File string
	Line int
	Old  string // concrete path as written, such as "masters[0].auth_pass"
	New  string // the path to write instead
}

// String is the one-line warning, "file:line: old is deprecated, write new instead".
func (d Deprecation) String() string {
	e := Error{File: d.File, Line: d.Line, Path: d.Old,
		Msg: fmt.Sprintf("deprecated key, write %s instead (it still works for now)", d.New)}
	return e.Error()
}

// Meta is what the loader learnt about one file besides the values: where each
// key was written, and which deprecated names it used.
type Meta struct {
	File         string
	Deprecations []Deprecation
	lines        map[string]int // concrete path -> line of its key (or list item)
}

// Given reports whether the file set path (such as "routing.no_majority_grace"),
// so a validator can tell an explicit zero from an absent key.
func (m *Meta) Given(path string) bool {
	if m == nil {
		return false
	}
	_, ok := m.lines[path]
	return ok
}

// Line is the line where path, or the nearest enclosing key the file gives,
// was written; 0 if none.
func (m *Meta) Line(path string) int {
	if m == nil {
		return 0
	}
	for path != "" {
		if l, ok := m.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// Errorf builds a positioned *Error for a validation problem at path.
func (m *Meta) Errorf(path, format string, args ...any) *Error {
	e := &Error{Path: path, Msg: fmt.Sprintf(format, args...), Line: m.Line(path)}
	if m != nil {
		e.File = m.File
	}
	return e
}

func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Load reads path and decodes it strictly into out (see Parse). Errors name
// the file.
func Load(path string, out any, aliases ...Alias) (*Meta, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return &Meta{File: path}, ErrorList{{File: path, Msg: msg}}
	}
	return Parse(path, data, out, aliases...)
}

// Parse decodes data, named name in messages, into out, a non-nil pointer to
// the caller's config struct already holding its defaults: a key the file
// gives (even as 0) overrides its default, an absent key keeps it.
//
// The rules: the data is exactly one YAML document (an empty file and a
// second document are errors); every key must be a field of out (matched by
// its yaml tag); a key may not be given twice; deprecated names in aliases
// are rewritten to their new names and reported in Meta.Deprecations.
// time.Duration and Duration fields take "250ms", "1s", "2m" or a whole number
// of milliseconds. A struct that implements Finisher is finished after it is
// decoded (Auth reads its password_file there).
//
// The error, if any, is an ErrorList of one-line "file:line: key.path: message"
// problems. Meta is never nil.
func Parse(name string, data []byte, out any, aliases ...Alias) (*Meta, error) {
	meta := &Meta{File: name, lines: map[string]int{}}
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return meta, ErrorList{{File: name, Msg: fmt.Sprintf("confkit: Parse needs a non-nil pointer, got %T", out)}}
	}
	parsed, err := parseAliases(aliases)
	if err != nil {
		return meta, ErrorList{{File: name, Msg: err.Error()}}
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return meta, ErrorList{{File: name, Msg: "the file is empty; it must hold one YAML document of settings"}}
		}
		return meta, ErrorList{syntaxError(name, err)}
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		line := second.Line
		if len(second.Content) > 0 && second.Content[0].Line > line {
			line = second.Content[0].Line
		}
		return meta, ErrorList{{File: name, Line: line, Msg: "a second YAML document (after ---); a config file holds exactly one"}}
	} else if !errors.Is(err, io.EOF) {
		return meta, ErrorList{syntaxError(name, err)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return meta, ErrorList{{File: name, Msg: "not a YAML document"}}
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return meta, ErrorList{{File: name, Line: root.Line, Msg: "the document is empty; it must hold the settings"}}
	}

	d := &decoder{file: name, meta: meta, budget: visitBudget}
	for _, a := range parsed {
		d.applyAlias(root, a)
	}
	if len(d.errs) == 0 {
		d.value(root, rv.Elem(), "")
	}
	return meta, d.errs.Err()
}

// visitBudget bounds the nodes the decoder visits, aliases expanded, so a
// file of nested anchors ("billion laughs") fails instead of eating memory.
const visitBudget = 100_000

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// splitLine takes yaml's "line N: msg" apart.
func splitLine(s string) (int, string) {
	s = strings.TrimPrefix(oneLine(s), "yaml: ")
	if m := lineRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, s
}

func syntaxError(name string, err error) *Error {
	line, msg := splitLine(err.Error())
	return &Error{File: name, Line: line, Msg: "YAML syntax: " + msg}
}

type decoder struct {
	file   string
	meta   *Meta
	errs   ErrorList
	budget int
	over   bool
}

func (d *decoder) add(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// deref follows YAML aliases (*name) to the anchored node, spending budget.
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func (d *decoder) spend() bool {
	if d.over {
		return false
	}
	d.budget--
	if d.budget < 0 {
		d.over = true
		d.add(0, "", "the document expands to more than %d nodes (nested aliases?)", visitBudget)
		return false
	}
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	textType        = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// Finisher is implemented by config types that complete or check themselves
// once decoded (Auth reads and checks its password_file). The loader calls
// FinishConfig for each such struct the file gives (a struct left at its
// default is not finished: call FinishConfig yourself if defaults can hold a
// password_file). An *Error returned with a relative Path is placed under the
// struct's own path.
type Finisher interface {
	FinishConfig() error
}

// leaf reports whether t is decoded by yaml itself rather than walked key by key.
func leaf(t reflect.Type) bool {
	if t == durationType {
		return true
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textType) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Pointer, reflect.Slice, reflect.Map:
		return false
	}
	return true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// value decodes n into v (addressable), whose key path is path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if !d.spend() {
		return
	}
	n = d.deref(n)
	if n == nil {
		return
	}
	t := v.Type()
	if leaf(t) {
		d.leaf(n, v, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.value(n, v.Elem(), path)
	case reflect.Struct:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.add(n.Line, path, "want a mapping of keys, got %s", describe(n))
			return
		}
		d.structure(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.add(n.Line, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			d.meta.lines[ip] = item.Line
			d.value(item, s.Index(i), ip)
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.MappingNode {
			d.add(n.Line, path, "want a mapping, got %s", describe(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		for _, p := range d.pairs(n, path) {
			kp := join(path, p.k.Value)
			k := reflect.New(t.Key())
			if err := p.k.Decode(k.Interface()); err != nil {
				d.yamlErr(p.k, kp, err)
				continue
			}
			d.meta.lines[kp] = p.k.Line
			e := reflect.New(t.Elem()).Elem()
			d.value(p.v, e, kp)
			v.SetMapIndex(k.Elem(), e)
		}
	}
}

func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	if v.Type() == durationType {
		if isNull(n) {
			return // as yaml: null leaves a scalar alone
		}
		var x Duration
		if err := x.UnmarshalYAML(n); err != nil {
			d.yamlErr(n, path, err)
			return
		}
		v.SetInt(int64(x))
		return
	}
	pt := reflect.PointerTo(v.Type())
	if v.Kind() == reflect.String && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" &&
		!pt.Implements(unmarshalerType) && !pt.Implements(textType) {
		v.SetString(n.Value) // what yaml does, without a decoder per string
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.yamlErr(n, path, err)
	}
}

// yamlErr turns an error from yaml (or from a type's UnmarshalYAML) into
// positioned one-line problems.
func (d *decoder) yamlErr(n *yaml.Node, path string, err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			line, msg := splitLine(m)
			if line == 0 {
				line = n.Line
			}
			d.add(line, path, "%s", msg)
		}
		return
	}
	var e *Error
	if errors.As(err, &e) && e.File == "" {
		line := e.Line
		if line == 0 {
			line = n.Line
		}
		d.add(line, joinRel(path, e.Path), "%s", e.Msg)
		return
	}
	line, msg := splitLine(err.Error())
	if line == 0 {
		line = n.Line
	}
	d.add(line, path, "%s", msg)
}

func joinRel(path, rel string) string {
	if rel == "" {
		return path
	}
	return join(path, rel)
}

type pair struct{ k, v *yaml.Node }

// pairs lists a mapping's entries with YAML merge keys (<<: *base) resolved:
// explicit keys win over merged ones, as in yaml itself. A key given twice is
// an error.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var explicit []pair
	var merges []*yaml.Node
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.add(k.Line, path, "a key must be a plain name, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if line, dup := first[k.Value]; dup {
			d.add(k.Line, join(path, k.Value), "given twice (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		explicit = append(explicit, pair{k, v})
	}
	if len(merges) == 0 {
		return explicit
	}
	var merged []pair
	for _, m := range merges {
		m = d.deref(m)
		var maps []*yaml.Node
		switch {
		case m == nil:
			continue
		case m.Kind == yaml.MappingNode:
			maps = []*yaml.Node{m}
		case m.Kind == yaml.SequenceNode:
			for _, it := range m.Content {
				maps = append(maps, d.deref(it))
			}
		default:
			maps = []*yaml.Node{m}
		}
		for _, mm := range maps {
			if mm == nil || mm.Kind != yaml.MappingNode {
				d.add(m.Line, join(path, "<<"), "a merge key wants a mapping or a list of mappings")
				continue
			}
			if !d.spend() {
				return explicit
			}
			for _, p := range d.pairs(mm, path) {
				if _, ok := first[p.k.Value]; !ok {
					first[p.k.Value] = p.k.Line
					merged = append(merged, p)
				}
			}
		}
	}
	return append(merged, explicit...)
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	fields := fieldsOf(v.Type())
	for _, p := range d.pairs(n, path) {
		name := p.k.Value
		kp := join(path, name)
		idx, ok := fields[name]
		if !ok {
			msg := "unknown key"
			if s := suggest(name, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			d.add(p.k.Line, kp, "%s", msg)
			continue
		}
		d.meta.lines[kp] = p.k.Line
		d.value(p.v, v.FieldByIndex(idx), kp)
	}
	if f, ok := v.Addr().Interface().(Finisher); ok {
		if err := f.FinishConfig(); err != nil {
			var e *Error
			if errors.As(err, &e) {
				p := joinRel(path, e.Path)
				line := e.Line
				if line == 0 {
					line = d.meta.Line(p)
				}
				if line == 0 {
					line = n.Line
				}
				d.add(line, p, "%s", e.Msg)
			} else {
				d.add(n.Line, path, "%s", err.Error())
			}
		}
	}
}

var fieldCache sync.Map // reflect.Type -> map[string][]int

// fieldsOf maps a struct's YAML keys to field indexes, following yaml's
// rules: the tag's name, else the lower-cased field name; "-" skips;
// ",inline" structs contribute their keys.
func fieldsOf(t reflect.Type) map[string][]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue // unexported
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			for k, idx := range fieldsOf(f.Type) {
				m[k] = append([]int{i}, idx...)
			}
			continue
		}
		if f.PkgPath != "" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = []int{i}
	}
	fieldCache.Store(t, m)
	return m
}

// suggest names the known key closest to a misspelt one (edit distance <= 2).
func suggest(name string, fields map[string][]int) string {
	best, bestD := "", 3
	for k := range fields {
		if dd := distance(name, k); dd < bestD || (dd == bestD && k < best) {
			best, bestD = k, dd
		}
	}
	return best
}

func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
