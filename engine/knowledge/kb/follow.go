package kb

import (
	"context"
	"time"
)

// FollowInterval is how often Follow applies the knowledge changes other
// replicas made: a document ingested or deleted through one is searchable
// (or gone) on every other within about this long.
const FollowInterval = time.Second

// Follow keeps the embedded vector store in step with the chunks that other
// processes on the same database write and delete (see embedded.Store.Follow),
// until ctx ends. Milvus-backed bases need nothing: every replica searches
// the same collection. The caller owns it, beside Run.
func (s *Service) Follow(ctx context.Context) error {
	return s.embedded.Follow(ctx, FollowInterval)
}
