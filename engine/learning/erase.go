package learning

import (
	"context"
	"fmt"
	"slices"

	"github.com/troupehq/troupe/engine/knowledge"
)

// erasePage is how many documents Erase reads at a time.
const erasePage = 500

// Kind names what Erase erases (the user erasers' report).
func (l *Learner) Kind() string { return "learnings" }

// Erase removes user's learnings from every knowledge base and returns how
// many were removed. A learning only user contributed is deleted; one
// merged from several users' runs loses user's runs and, when user wrote
// it, passes to the next contributor (whose insight was near-identical).
func (l *Learner) Erase(ctx context.Context, user string) (int, error) {
	if user == "" {
		return 0, fmt.Errorf("erasing learnings needs a user id")
	}
	n := 0
	for _, b := range l.opts.Knowledge.Bases() {
		var mine []knowledge.Document
		for page := 1; ; page++ {
			docs, total, err := l.opts.Knowledge.List(ctx, knowledge.DocumentQuery{KnowledgeID: b.Name, Limit: erasePage, Page: page, SortBy: "created_at", SortOrder: "asc"})
			if err != nil {
				return n, fmt.Errorf("listing the learnings of %s: %w", b.Name, err)
			}
			for _, d := range docs {
				if d.Metadata["source"] == Source && (d.Metadata["user_id"] == user || slices.Contains(stringList(d.Metadata[MetaUserIDs]), user)) {
					mine = append(mine, d)
				}
			}
			if len(docs) == 0 || page*erasePage >= total {
				break
			}
		}
		l.mu.Lock()
		for _, d := range mine {
			users := slices.DeleteFunc(stringList(d.Metadata[MetaUserIDs]), func(u string) bool { return u == user })
			if len(users) == 0 {
				if err := l.opts.Knowledge.Delete(ctx, d.ID); err != nil {
					l.mu.Unlock()
					return n, fmt.Errorf("deleting learning %s: %w", d.ID, err)
				}
				n++
				continue
			}
			meta := make(map[string]any, len(d.Metadata))
			for k, v := range d.Metadata {
				meta[k] = v
			}
			meta[MetaUserIDs] = anys(users)
			if meta["user_id"] == user {
				meta["user_id"] = users[0]
			}
			// Runs of the erased user cannot be told apart once merged; the
			// runs themselves are erased with the user's sessions.
			if _, err := l.opts.Knowledge.Patch(ctx, d.ID, nil, nil, meta); err != nil {
				l.mu.Unlock()
				return n, fmt.Errorf("removing user %s from learning %s: %w", user, d.ID, err)
			}
			n++
		}
		l.mu.Unlock()
	}
	return n, nil
}
