package kb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
	"github.com/troupehq/troupe/engine/knowledge/chunk"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/reader"
)

type xchunk struct {
	id, doc, text, heading string
	vec                    []float32
	w                      map[uint32]float32
	dl                     int
}

func dotf(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestZZScratch(t *testing.T) {
	paths, _ := filepath.Glob("testdata/corpus/*.md")
	slices.Sort(paths)
	raw, _ := os.ReadFile("testdata/questions.yaml")
	var qs []question
	_ = yaml.Unmarshal(raw, &qs)
	emb := embed.NewLocal(embed.LocalOptions{Dimension: 384})
	ctx := context.Background()
	for _, variant := range []string{"raw-ingestorder", "raw-finalavgdl", "heading-prefixed", "title-prefixed"} {
		var all []xchunk
		var st bm25.Stats
		for _, p := range paths {
			data, _ := os.ReadFile(p)
			secs, _ := reader.Read("markdown", p, data)
			pieces, _ := chunk.Split(secs, chunk.Options{Strategy: "markdown", Size: 200, Overlap: 30})
			avg := st.AvgDL()
			n0 := len(all)
			for i, pc := range pieces {
				text := pc.Text
				switch variant {
				case "heading-prefixed":
					text = pc.Heading + "\n" + pc.Text
				case "title-prefixed":
					title := pc.Heading
					if i := len(title); i > 0 {
						for j := 0; j+3 <= len(title); j++ {
							if title[j:j+3] == " > " {
								title = title[:j]
								break
							}
						}
					}
					text = title + "\n" + pc.Text
				}
				w, dl := bm25.Doc(text, avg)
				v, _ := emb.Embed(ctx, []string{text})
				all = append(all, xchunk{id: knowledge.ChunkID(filepath.Base(p), i), doc: filepath.Base(p), text: text, heading: pc.Heading, vec: v[0], w: w, dl: dl})
			}
			for _, c := range all[n0:] {
				st.Add(c.w, c.dl)
			}
		}
		if variant != "raw-ingestorder" {
			for i := range all {
				all[i].w, _ = bm25.Doc(all[i].text, st.AvgDL())
			}
		}
		r1 := map[string]int{}
		r3 := map[string]int{}
		for _, q := range qs {
			qv, _ := emb.Embed(ctx, []string{q.Q})
			qw := st.Query(q.Q)
			rank := func(score func(c xchunk) float64, n int, pos bool) []knowledge.Hit {
				var hs []knowledge.Hit
				for i, c := range all {
					s := score(c)
					if pos && s <= 0 {
						continue
					}
					hs = append(hs, knowledge.Hit{Chunk: knowledge.Chunk{ID: c.id, DocumentID: c.doc, Document: c.doc, Index: i}, Score: s})
				}
				knowledge.SortHits(hs)
				return hs[:min(n, len(hs))]
			}
			vs := func(c xchunk) float64 { return float64(float32(dotf(qv[0], c.vec))) }
			ks := func(c xchunk) float64 {
				s := float32(0)
				for _, id := range bm25.SortedIDs(qw) {
					s += qw[id] * c.w[id]
				}
				return float64(s)
			}
			lists := map[string][]knowledge.Hit{
				"vector":  rank(vs, 10, false),
				"keyword": rank(ks, 10, true),
				"hybrid":  knowledge.Fuse(10, rank(vs, 50, false), rank(ks, 50, true)),
			}
			for m, hs := range lists {
				r := slices.IndexFunc(hs, func(h knowledge.Hit) bool { return h.Document == q.Doc })
				if r == 0 {
					r1[m]++
				}
				if r >= 0 && r < 3 {
					r3[m]++
				} else if variant != "raw-ingestorder" && m == "hybrid" {
					fmt.Printf("   %s hybrid miss: %q rank %d\n", variant, q.Q, r+1)
				}
			}
		}
		n := float64(len(qs))
		fmt.Printf("%-18s", variant)
		for _, m := range []string{"vector", "keyword", "hybrid"} {
			fmt.Printf("  %s %.3f/%.3f", m, float64(r1[m])/n, float64(r3[m])/n)
		}
		fmt.Println()
	}
}
