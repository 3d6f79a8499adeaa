package knowledge

import (
	"cmp"
	"reflect"
	"slices"
)

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
