package expr_test

import (
	"strings"
	"testing"

	"github.com/troupehq/troupe/spec/expr"
)

// FuzzParseTemplate checks that any input either parses into segments that
// put the template back together, or fails with an offset inside it.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"", "plain", "a {{ b }} c", "{{ '}}' }}", "{{", "}}", "{{ \"x\\\"\" }}", "{{ '''a}}''' }}", "{\"a\": {\"b\": {{ n }}}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		segs, err := expr.ParseTemplate(src)
		if err != nil {
			e, ok := err.(*expr.Error)
			if !ok || e.Offset < 0 || e.Offset > len(src) {
				t.Fatalf("ParseTemplate(%q): bad error %v", src, err)
			}
			return
		}
		var b strings.Builder
		for _, s := range segs {
			if s.Offset < 0 || s.Offset > len(src) || !strings.HasPrefix(src[s.Offset:], s.Text) {
				t.Fatalf("ParseTemplate(%q): segment %+v is not at its offset", src, s)
			}
			if s.Expr {
				b.WriteString("{{" + s.Text + "}}")
			} else {
				b.WriteString(s.Text)
			}
		}
		if b.String() != src {
			t.Fatalf("ParseTemplate(%q): segments rebuild %q", src, b.String())
		}
	})
}
