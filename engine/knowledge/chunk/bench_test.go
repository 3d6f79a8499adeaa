package chunk

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/troupehq/troupe/engine/knowledge"
)

// benchMarkdown generates about n bytes of Markdown: headings, prose
// paragraphs, lists, fenced code, tables and a little CJK.
func benchMarkdown(n int) string {
	r := rand.New(rand.NewPCG(42, 42))
	words := strings.Fields(`the a of to and in is that for it as with was on be by this are from
		retrieval augmented generation document section chunk embedding vector index query
		agent runtime configuration deployment kubernetes container latency throughput
		approximately internationalization implementation e.g. i.e. API HTTP JSON`)
	sentence := func() string {
		k := 6 + r.IntN(18)
		ws := make([]string, k)
		for i := range ws {
			ws[i] = words[r.IntN(len(words))]
		}
		ws[0] = strings.ToUpper(ws[0][:1]) + ws[0][1:]
		return strings.Join(ws, " ") + []string{".", ".", ".", "?", "!"}[r.IntN(5)]
	}
	var b strings.Builder
	for h := 0; b.Len() < n; h++ {
		fmt.Fprintf(&b, "%s Section %d\n\n", strings.Repeat("#", 1+h%3), h)
		for range 1 + r.IntN(4) {
			switch r.IntN(6) {
			case 0:
				for range 2 + r.IntN(5) {
					b.WriteString("- " + sentence() + "\n")
				}
			case 1:
				b.WriteString("```go\nfunc handler(w http.ResponseWriter, r *http.Request) {\n")
				for i := range 3 + r.IntN(20) {
					fmt.Fprintf(&b, "\tx%d := compute(r.Context(), %d) // %s\n", i, i, sentence())
				}
				b.WriteString("}\n```\n")
			case 2:
				b.WriteString("| name | value |\n|---|---|\n")
				for i := range 2 + r.IntN(6) {
					fmt.Fprintf(&b, "| key%d | %s |\n", i, words[r.IntN(len(words))])
				}
			case 3:
				b.WriteString("検索拡張生成は文書を小さな断片に分割します。各断片は埋め込まれます！")
			default:
				for range 2 + r.IntN(8) {
					b.WriteString(sentence() + " ")
				}
			}
			b.WriteString("\n\n")
		}
	}
	return b.String()
}

func BenchmarkSplit(b *testing.B) {
	doc := benchMarkdown(1 << 20)
	sections := []knowledge.Section{{Text: doc}}
	for _, strategy := range Strategies {
		b.Run(strategy, func(b *testing.B) {
			opts := Options{Strategy: strategy, Size: 512, Overlap: 64}
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Split(sections, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTokens(b *testing.B) {
	doc := benchMarkdown(1 << 20)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		Tokens(doc)
	}
}
