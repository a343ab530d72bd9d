package confkit

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

type aliasSeg struct {
	key  string
	each bool // "key[]": every element of the list under key
}

type parsedAlias struct {
	Alias
	prefix   []aliasSeg // shared by Old and New, ends with an "each" segment (or empty)
	old, new []string   // plain keys after the prefix
}

func parseAliases(as []Alias) ([]parsedAlias, error) {
	out := make([]parsedAlias, 0, len(as))
	for _, a := range as {
		p, err := parseAlias(a)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func splitSegs(path string) ([]aliasSeg, error) {
	if path == "" {
		return nil, fmt.Errorf("empty path")
	}
	var segs []aliasSeg
	for _, s := range strings.Split(path, ".") {
		seg := aliasSeg{key: s}
		if k, ok := strings.CutSuffix(s, "[]"); ok {
			seg = aliasSeg{key: k, each: true}
		}
		if seg.key == "" || strings.ContainsAny(seg.key, "[]") {
			return nil, fmt.Errorf("bad segment %q", s)
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

func parseAlias(a Alias) (parsedAlias, error) {
	bad := func(why string) (parsedAlias, error) {
		return parsedAlias{}, fmt.Errorf("confkit: alias %s -> %s: %s", a.Old, a.New, why)
	}
	o, err := splitSegs(a.Old)
	if err != nil {
		return bad(err.Error())
	}
	n, err := splitSegs(a.New)
	if err != nil {
		return bad(err.Error())
	}
	last := -1
	for i, s := range o {
		if s.each {
			last = i
		}
	}
	if last == len(o)-1 {
		return bad("the old key must not end with []")
	}
	if len(n) <= last+1 {
		return bad("the new key must be inside the same list element")
	}
	for i := 0; i <= last; i++ {
		if o[i] != n[i] {
			return bad("the paths must agree up to the last []")
		}
	}
	p := parsedAlias{Alias: a, prefix: o[:last+1]}
	for _, s := range o[last+1:] {
		p.old = append(p.old, s.key)
	}
	for _, s := range n[last+1:] {
		if s.each {
			return bad("the new key has a [] after the old key's last []")
		}
		p.new = append(p.new, s.key)
	}
	if strings.Join(p.old, ".") == strings.Join(p.new, ".") {
		return bad("old and new are the same")
	}
	return p, nil
}

// lookup finds key in mapping m: the index of its key node, or -1.
func lookup(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key && k.ShortTag() != "!!merge" {
			return i
		}
	}
	return -1
}

// applyAlias rewrites every use of a.Old in the tree to a.New.
func (d *decoder) applyAlias(root *yaml.Node, a parsedAlias) {
	d.eachPrefix(root, a.prefix, "", func(m *yaml.Node, base string) { d.move(m, base, a) })
}

func (d *decoder) eachPrefix(n *yaml.Node, segs []aliasSeg, path string, fn func(*yaml.Node, string)) {
	n = d.deref(n)
	if n == nil || n.Kind != yaml.MappingNode || !d.spend() {
		return // not what the schema wants: the decoder reports it
	}
	if len(segs) == 0 {
		fn(n, path)
		return
	}
	i := lookup(n, segs[0].key)
	if i < 0 {
		return
	}
	v, p := d.deref(n.Content[i+1]), join(path, segs[0].key)
	if !segs[0].each {
		d.eachPrefix(v, segs[1:], p, fn)
		return
	}
	if v == nil || v.Kind != yaml.SequenceNode {
		return
	}
	for j, item := range v.Content {
		d.eachPrefix(item, segs[1:], fmt.Sprintf("%s[%d]", p, j), fn)
	}
}

// move moves the key a.old (under mapping m at path base) to a.new.
func (d *decoder) move(m *yaml.Node, base string, a parsedAlias) {
	parent := m
	for _, k := range a.old[:len(a.old)-1] {
		i := lookup(parent, k)
		if i < 0 {
			return
		}
		parent = d.deref(parent.Content[i+1])
		if parent == nil || parent.Kind != yaml.MappingNode {
			return
		}
	}
	i := lookup(parent, a.old[len(a.old)-1])
	if i < 0 {
		return
	}
	oldKey, val := parent.Content[i], parent.Content[i+1]
	oldPath := join(base, strings.Join(a.old, "."))
	newPath := join(base, strings.Join(a.new, "."))

	// Find or make the new key's mapping.
	target := m
	for j, k := range a.new[:len(a.new)-1] {
		at := join(base, strings.Join(a.new[:j+1], "."))
		ti := lookup(target, k)
		if ti < 0 {
			nm := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: oldKey.Line, Column: oldKey.Column}
			target.Content = append(target.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k, Line: oldKey.Line, Column: oldKey.Column}, nm)
			target = nm
			continue
		}
		next := d.deref(target.Content[ti+1])
		if next != nil && isNull(next) {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: next.Line, Column: next.Column}
			target.Content[ti+1] = next
		}
		if next == nil || next.Kind != yaml.MappingNode {
			d.add(target.Content[ti].Line, at, "want a mapping (to hold %s, the new name of %s)", newPath, oldPath)
			return
		}
		target = next
	}
	last := a.new[len(a.new)-1]
	if ti := lookup(target, last); ti >= 0 {
		d.add(oldKey.Line, oldPath, "deprecated name of %s, which is also given (line %d); keep only %s",
			newPath, target.Content[ti].Line, newPath)
		return
	}
	// Remove the old pair only now that the move cannot fail. parent may be
	// target (a rename in place), so remove before appending.
	parent.Content = append(parent.Content[:i:i], parent.Content[i+2:]...)
	nk := *oldKey
	nk.Value = last
	target.Content = append(target.Content, &nk, val)
	d.meta.Deprecations = append(d.meta.Deprecations, Deprecation{File: d.file, Line: oldKey.Line, Old: oldPath, New: newPath})
}
