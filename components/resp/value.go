package resp

import (
	"fmt"
	"strconv"
)

// Kind is the RESP type byte that starts every value on the wire.
type Kind byte

// The RESP2 and RESP3 value kinds, named after their type bytes.
const (
	SimpleString Kind = '+'
	Error        Kind = '-'
	Integer      Kind = ':'
	BulkString   Kind = '$'
	Array        Kind = '*'
	Null         Kind = '_'
	Double       Kind = ','
	Boolean      Kind = '#'
	BlobError    Kind = '!'
	Verbatim     Kind = '='
	BigNumber    Kind = '('
	Map          Kind = '%'
	Set          Kind = '~'
	Push         Kind = '>'
	Attribute    Kind = '|'
)

// String names the kind for error messages.
func (k Kind) String() string {
	switch k {
	case SimpleString:
		return "simple-string"
	case Error:
		return "error"
	case Integer:
		return "integer"
	case BulkString:
		return "bulk-string"
	case Array:
		return "array"
	case Null:
		return "null"
	case Double:
		return "double"
	case Boolean:
		return "boolean"
	case BlobError:
		return "blob-error"
	case Verbatim:
		return "verbatim-string"
	case BigNumber:
		return "big-number"
	case Map:
		return "map"
	case Set:
		return "set"
	case Push:
		return "push"
	case Attribute:
		return "attribute"
	}
	return fmt.Sprintf("kind(%q)", byte(k))
}

// Value is one decoded RESP value. Maps and attributes are kept flat
// (k1, v1, k2, v2, ...) in Elems so that RESP2 replies that encode a map as an
// array of pairs, as SENTINEL MASTER does, read the same way.
type Value struct {
	Kind  Kind
	Str   string  // simple, bulk, verbatim, error, blob-error and big-number text
	Int   int64   // Integer
	Float float64 // Double
	Bool  bool    // Boolean
	Null  bool    // $-1, *-1 or RESP3 _
	Elems []Value // Array, Set, Push; Map and Attribute flattened as pairs
}

// IsError reports whether the value is an error reply of either RESP version.
func (v Value) IsError() bool { return v.Kind == Error || v.Kind == BlobError }

// Text renders scalar values as text: the string itself for string kinds and
// the decimal form for numbers. Aggregates and nulls render as "".
func (v Value) Text() string {
	switch v.Kind {
	case Integer:
		return strconv.FormatInt(v.Int, 10)
	case Double:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case Boolean:
		if v.Bool {
			return "1"
		}
		return "0"
	case Array, Set, Push, Map, Attribute, Null:
		return ""
	}
	if v.Null {
		return ""
	}
	return v.Str
}

// PairList reads a flat key/value array (RESP2) or a map (RESP3) in order.
func (v Value) PairList() ([][2]string, error) {
	switch v.Kind {
	case Array, Map, Attribute:
	default:
		return nil, fmt.Errorf("resp: expected a map or an array of pairs, got %s", v.Kind)
	}
	if len(v.Elems)%2 != 0 {
		return nil, fmt.Errorf("resp: odd number of elements (%d) in a key/value reply", len(v.Elems))
	}
	out := make([][2]string, 0, len(v.Elems)/2)
	for i := 0; i < len(v.Elems); i += 2 {
		out = append(out, [2]string{v.Elems[i].Text(), v.Elems[i+1].Text()})
	}
	return out, nil
}

// Pairs is PairList as a map; a repeated key keeps its last value.
func (v Value) Pairs() (map[string]string, error) {
	list, err := v.PairList()
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(list))
	for _, kv := range list {
		m[kv[0]] = kv[1]
	}
	return m, nil
}
