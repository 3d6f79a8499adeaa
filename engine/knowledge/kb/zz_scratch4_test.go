package kb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/troupehq/troupe/engine/knowledge/embed"
)

func TestZZVec(t *testing.T) {
	for _, dim := range []int{384, 768, 1536} {
		emb := embed.NewLocal(embed.LocalOptions{Dimension: dim})
		e := func(s string) []float32 { v, _ := emb.Embed(context.Background(), []string{s}); return v[0] }
		fmt.Println(dim, "okta·slack", dotf(e("okta"), e("slack")), "okta·slack slack slack", dotf(e("okta"), e("slack slack slack quillpad")), "okta·okta sso", dotf(e("okta"), e("okta sso")))
	}
}
