package approval_test

import (
	"testing"

	"github.com/troupehq/troupe/engine/approval"
)

// BenchmarkGateCheck is the cost a policy adds to each call of its tool: one
// CEL condition that does not match (the common case), and one that matches
// and renders its reason.
func BenchmarkGateCheck(b *testing.B) {
	set := tools(b, `kind: Tool
name: refund
type: http
url: https://x.example.com/r
approval:
  when: 'args.amount > 100'
  reason: 'Refund of {{ args.amount }} for {{ args.order }}'
`)
	g := approval.NewGate(set.Tool("refund"))
	for _, bc := range []struct {
		name   string
		amount float64
	}{{"no match", 50}, {"match", 500}} {
		b.Run(bc.name, func(b *testing.B) {
			call := approval.Call{ID: "c", Tool: "refund", Args: map[string]any{"amount": bc.amount, "order": "A1"}, Agent: "clerk", User: "u"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Check(b.Context(), call); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
