package knowledge

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
)

// ErrInvalidFilter is wrapped by errors about search filters that no store
// can apply.
var ErrInvalidFilter = errors.New("invalid filter")

// MaxFilterKey bounds a metadata key in a filter.
const MaxFilterKey = 128

// Validate checks that every store applies f the same way, so that a filter
// never works on one store and fails (or means something else) on another:
// keys are 1 to MaxFilterKey letters, digits, '_' and '-' (Milvus reads them
// inside an expression); values are strings, finite numbers or booleans, as
// JSON decodes them, or lists of those (meaning "one of").
func (f Filters) Validate() error {
	for k, v := range f {
		if err := ValidFilterKey(k); err != nil {
			return err
		}
		if list, ok := v.([]any); ok {
			for _, e := range list {
				if err := validFilterValue(k, e); err != nil {
					return err
				}
			}
			continue
		}
		if err := validFilterValue(k, v); err != nil {
			return err
		}
	}
	return nil
}

// ValidFilterKey checks a metadata key of a filter (see Filters.Validate).
func ValidFilterKey(k string) error {
	if k == "" {
		return fmt.Errorf("%w: empty metadata key", ErrInvalidFilter)
	}
	if len(k) > MaxFilterKey {
		return fmt.Errorf("%w: metadata key %.32q... is longer than %d characters", ErrInvalidFilter, k, MaxFilterKey)
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: metadata key %q may only contain letters, digits, '_' and '-'", ErrInvalidFilter, k)
		}
	}
	return nil
}

func validFilterValue(k string, v any) error {
	switch x := v.(type) {
	case string, bool, int, int64:
		return nil
	case float64:
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return nil
		}
	case float32:
		if f := float64(x); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return nil
		}
	case nil:
		return fmt.Errorf("%w: filter %q: null matches nothing; leave the key out instead", ErrInvalidFilter, k)
	}
	return fmt.Errorf("%w: filter %q: %v is not a string, a number or a boolean (or a list of them)", ErrInvalidFilter, k, v)
}

// sortHits orders hits best first; ties by document then position, so results
// are deterministic.
func sortHits(hs []Hit) {
	slices.SortStableFunc(hs, func(a, b Hit) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.DocumentID, b.DocumentID), cmp.Compare(a.Index, b.Index))
	})
}

// SortHits orders hits best first, deterministically.
func SortHits(hs []Hit) { sortHits(hs) }

// Match reports whether metadata satisfies filters.
func (f Filters) Match(metadata map[string]any) bool {
	for k, want := range f {
		got, ok := metadata[k]
		if !ok {
			return false
		}
		if list, isList := want.([]any); isList {
			if !slices.ContainsFunc(list, func(v any) bool { return equal(v, got) }) {
				return false
			}
			continue
		}
		if !equal(want, got) {
			return false
		}
	}
	return true
}

// equal compares JSON-decoded values, treating all numbers as float64. Lists
// and objects are compared structurally (== would panic on them).
func equal(a, b any) bool {
	if fa, ok := num(a); ok {
		fb, ok := num(b)
		return ok && fa == fb
	}
	switch a.(type) {
	case []any, map[string]any:
		return reflect.DeepEqual(a, b)
	}
	switch b.(type) {
	case []any, map[string]any:
		return false
	}
	return a == b
}

func num(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}
