package store_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/spec"
)

// slowEmbedder makes ingestion take long enough to be interrupted.
type slowEmbedder struct {
	knowledge.Embedder
	delay time.Duration
	calls atomic.Int64
}

func (s *slowEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	s.calls.Add(1)
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Embedder.Embed(ctx, texts)
}

func knowledgeSpecs(t *testing.T, dir string) []*spec.Knowledge {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte("kind: Knowledge\nname: docs\nchunking: {strategy: markdown, size: 40, overlap: 5}\n"), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(t, err)
	return []*spec.Knowledge{set.Knowledge("docs")}
}
