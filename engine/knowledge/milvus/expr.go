package milvus

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/troupehq/troupe/engine/knowledge"
)

// Boolean expressions sent to Milvus are built only here. The grammar emitted
// is deliberately small, so it can be checked (and parsed by the test fake):
//
//	expr    = clause { " && " clause }
//	clause  = field " == " literal
//	        | field " in [" literal { ", " literal } "]"
//	        | "(" clause { " || " clause } ")"
//	field   = "document_id" | "knowledge_id" | "metadata[" string "]"
//	literal = string | integer | float | "true" | "false"
//
// Strings are double-quoted with backslashes, quotes and control characters
// escaped, so no value can end its literal early; metadata keys are restricted
// to [A-Za-z0-9_-]; numbers are formatted by strconv. Nothing the caller passes
// can therefore add operators or field references to an expression.

// maxSafeInteger is the largest integer a float64 holds exactly (2^53).
const maxSafeInteger = 1 << 53

// quote returns s as a Milvus string literal. Milvus lexes a double-quoted
// literal like C (no raw newlines, backslash escapes) and decodes it with Go's
// strconv.Unquote, so the escapes used here are the ones both accept. Invalid
// UTF-8 becomes U+FFFD, as it does when the metadata is stored as JSON.
func quote(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04x`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// literal kinds; Milvus compares a JSON value with a literal of its own type,
// so lists are split per kind.
type kind int

const (
	kindString kind = iota
	kindInt
	kindFloat
	kindBool
)

// literal formats a scalar filter value.
func literal(v any) (string, kind, error) {
	switch x := v.(type) {
	case string:
		return quote(x), kindString, nil
	case bool:
		return strconv.FormatBool(x), kindBool, nil
	case int:
		return strconv.FormatInt(int64(x), 10), kindInt, nil
	case int8:
		return strconv.FormatInt(int64(x), 10), kindInt, nil
	case int16:
		return strconv.FormatInt(int64(x), 10), kindInt, nil
	case int32:
		return strconv.FormatInt(int64(x), 10), kindInt, nil
	case int64:
		return strconv.FormatInt(x, 10), kindInt, nil
	case uint:
		return uintLiteral(uint64(x))
	case uint8:
		return uintLiteral(uint64(x))
	case uint16:
		return uintLiteral(uint64(x))
	case uint32:
		return uintLiteral(uint64(x))
	case uint64:
		return uintLiteral(x)
	case float32:
		return floatLiteral(float64(x))
	case float64:
		return floatLiteral(x)
	case interface{ Float64() (float64, error) }: // json.Number
		if s, ok := v.(fmt.Stringer); ok {
			if n, err := strconv.ParseInt(s.String(), 10, 64); err == nil {
				return strconv.FormatInt(n, 10), kindInt, nil
			}
		}
		f, err := x.Float64()
		if err != nil {
			return "", 0, fmt.Errorf("%w: %v is not a number", knowledge.ErrInvalidFilter, v)
		}
		return floatLiteral(f)
	case nil:
		return "", 0, fmt.Errorf("%w: null values cannot be matched", knowledge.ErrInvalidFilter)
	}
	return "", 0, fmt.Errorf("%w: unsupported value type %T (use strings, numbers, booleans or a list of them)", knowledge.ErrInvalidFilter, v)
}

func uintLiteral(u uint64) (string, kind, error) {
	if u > math.MaxInt64 {
		return "", 0, fmt.Errorf("%w: %d is out of range", knowledge.ErrInvalidFilter, u)
	}
	return strconv.FormatUint(u, 10), kindInt, nil
}

// floatLiteral formats f; integral values become integers so that 2024.0
// (how JSON-decoded filters arrive) matches a stored 2024.
func floatLiteral(f float64) (string, kind, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", 0, fmt.Errorf("%w: %v cannot be matched", knowledge.ErrInvalidFilter, f)
	}
	if f == math.Trunc(f) && math.Abs(f) <= maxSafeInteger {
		return strconv.FormatInt(int64(f), 10), kindInt, nil
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s, kindFloat, nil
}

// listValues returns the elements of v when it is a list (any slice or array
// except []byte).
func listValues(v any) ([]any, bool) {
	if l, ok := v.([]any); ok {
		return l, true
	}
	if v == nil {
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if (rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array) || rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

// metadataField is the expression of a metadata key (validated by the caller).
func metadataField(key string) string {
	return fieldMetadata + "[" + quote(key) + "]"
}

// filterClause is the expression matching one filter entry. none reports that
// no chunk can match (an empty list).
func filterClause(key string, value any) (clause string, none bool, err error) {
	if err := knowledge.ValidFilterKey(key); err != nil {
		return "", false, err
	}
	field := metadataField(key)
	list, isList := listValues(value)
	if !isList {
		lit, _, err := literal(value)
		if err != nil {
			return "", false, fmt.Errorf("filter %q: %w", key, err)
		}
		return field + " == " + lit, false, nil
	}
	if len(list) == 0 {
		return "", true, nil
	}
	byKind := map[kind][]string{}
	for _, v := range list {
		lit, k, err := literal(v)
		if err != nil {
			return "", false, fmt.Errorf("filter %q: %w", key, err)
		}
		if !slices.Contains(byKind[k], lit) {
			byKind[k] = append(byKind[k], lit)
		}
	}
	var parts []string
	for _, k := range []kind{kindString, kindInt, kindFloat, kindBool} {
		if lits := byKind[k]; len(lits) > 0 {
			parts = append(parts, field+" in ["+strings.Join(lits, ", ")+"]")
		}
	}
	if len(parts) == 1 {
		return parts[0], false, nil
	}
	return "(" + strings.Join(parts, " || ") + ")", false, nil
}

// searchExpr is the expression selecting the chunks of knowledgeID that match
// filters. none reports that no chunk can match, so Milvus need not be asked.
func searchExpr(knowledgeID string, filters knowledge.Filters) (expr string, none bool, err error) {
	clauses := []string{fieldKnowledge + " == " + quote(knowledgeID)}
	keys := make([]string, 0, len(filters))
	for k := range filters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c, empty, err := filterClause(k, filters[k])
		if err != nil {
			return "", false, err
		}
		if empty {
			none = true
			continue
		}
		clauses = append(clauses, c)
	}
	return strings.Join(clauses, " && "), none, nil
}

// documentExpr is the expression selecting every chunk of a document.
func documentExpr(documentID string) string {
	return fieldDocument + " == " + quote(documentID)
}
