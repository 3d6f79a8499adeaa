package memory

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// Defaults of Options.
const (
	// DefaultMaxPerUser bounds a user's memories, and DefaultMaxPerAgent
	// those of one agent scope of a user.
	DefaultMaxPerUser  = 1000
	DefaultMaxPerAgent = 1000
	// DefaultRecencyHalfLife is the age at which a memory's recency is 1/2.
	DefaultRecencyHalfLife = 30 * 24 * time.Hour
	// DefaultRecencyWeight is how much recency lifts a memory's relevance:
	// a memory updated now scores up to 5% above an equally relevant one
	// updated long ago.
	DefaultRecencyWeight = 0.05
	// MaxMemoryBytes bounds the text of a memory, MaxTopics its topics and
	// MaxTopicBytes one topic.
	MaxMemoryBytes = 8 << 10
	MaxTopics      = 32
	MaxTopicBytes  = 128
)

// Options configure a Service.
type Options struct {
	Store Store
	// Index is where memories are searched; nil disables Recall's search
	// (it then returns the most recently updated memories).
	Index *Index
	// MaxPerUser and MaxPerAgent bound a user's memories, and those of one
	// agent of a user (default DefaultMaxPerUser and DefaultMaxPerAgent).
	// Adding past a bound deletes the least recently updated memories of
	// the scope that overflows: the ones an update has not refreshed for
	// longest are the likeliest to be out of date.
	MaxPerUser, MaxPerAgent int
	// RecencyHalfLife and RecencyWeight shape Recall's scoring (defaults
	// DefaultRecencyHalfLife and DefaultRecencyWeight).
	RecencyHalfLife time.Duration
	RecencyWeight   float64
	Logger          *slog.Logger
	Now             func() time.Time
}

// Service is the API of memories for the agent wiring and the HTTP routes:
// it writes SQL first, then the index, and answers Recall from the index
// re-checked against SQL.
type Service struct {
	opts Options
	log  *slog.Logger
}

// New returns a Service.
func New(opts Options) *Service {
	if opts.MaxPerUser <= 0 {
		opts.MaxPerUser = DefaultMaxPerUser
	}
	if opts.MaxPerAgent <= 0 {
		opts.MaxPerAgent = DefaultMaxPerAgent
	}
	if opts.RecencyHalfLife <= 0 {
		opts.RecencyHalfLife = DefaultRecencyHalfLife
	}
	if opts.RecencyWeight < 0 {
		opts.RecencyWeight = 0
	} else if opts.RecencyWeight == 0 {
		opts.RecencyWeight = DefaultRecencyWeight
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{opts: opts, log: opts.Logger}
}

// Limits returns the per-user and per-agent bounds.
func (s *Service) Limits() (perUser, perAgent int) { return s.opts.MaxPerUser, s.opts.MaxPerAgent }

func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// normalize checks and cleans m's text and topics: topics are trimmed,
// lower-cased and deduplicated, in order.
func normalize(m *Memory) error {
	m.Memory = strings.TrimSpace(m.Memory)
	switch {
	case m.UserID == "":
		return fmt.Errorf("%w: a memory needs a user_id", ErrInvalid)
	case m.Memory == "":
		return fmt.Errorf("%w: the memory text is empty", ErrInvalid)
	case len(m.Memory) > MaxMemoryBytes:
		return fmt.Errorf("%w: the memory is %d bytes; the limit is %d", ErrInvalid, len(m.Memory), MaxMemoryBytes)
	case !utf8.ValidString(m.Memory) || !utf8.ValidString(m.Input):
		return fmt.Errorf("%w: the memory is not valid UTF-8", ErrInvalid)
	}
	topics := make([]string, 0, len(m.Topics))
	for _, t := range m.Topics {
		t = strings.ToLower(strings.TrimSpace(t))
		switch {
		case t == "" || slices.Contains(topics, t):
			continue
		case len(t) > MaxTopicBytes:
			return fmt.Errorf("%w: topic %.32q... is longer than %d bytes", ErrInvalid, t, MaxTopicBytes)
		case strings.ContainsAny(t, ",\"") || !utf8.ValidString(t):
			return fmt.Errorf("%w: topic %q may not contain commas or quotes", ErrInvalid, t)
		}
		topics = append(topics, t)
	}
	if len(topics) > MaxTopics {
		return fmt.Errorf("%w: %d topics; the limit is %d", ErrInvalid, len(topics), MaxTopics)
	}
	m.Topics = topics
	return nil
}

// Add stores a new memory for m.UserID and indexes it, then enforces the
// bounds (deleting the least recently updated memories past them). It sets
// m's ID and timestamps.
func (s *Service) Add(ctx context.Context, m *Memory) (*Memory, error) {
	if err := normalize(m); err != nil {
		return nil, err
	}
	m.ID = uuid.Must(uuid.NewV7()).String()
	m.CreatedAt = s.now()
	m.UpdatedAt = m.CreatedAt
	if err := s.opts.Store.CreateMemory(ctx, m); err != nil {
		return nil, fmt.Errorf("saving a memory: %w", err)
	}
	s.indexPut(ctx, []Memory{*m}, nil)
	if err := s.enforce(ctx, m.UserID, m.AgentID, m.ID); err != nil {
		return nil, err
	}
	return m, nil
}

// enforce deletes the least recently updated memories of userID past the
// per-agent bound (for agentID) and the per-user bound, never keep (the
// memory just written).
func (s *Service) enforce(ctx context.Context, userID, agentID, keep string) error {
	scopes := []struct {
		agent string
		max   int
	}{{"", s.opts.MaxPerUser}}
	if agentID != "" {
		scopes = append([]struct {
			agent string
			max   int
		}{{agentID, s.opts.MaxPerAgent}}, scopes...)
	}
	for _, sc := range scopes {
		n, err := s.opts.Store.CountMemories(ctx, userID, sc.agent)
		if err != nil {
			return fmt.Errorf("counting memories: %w", err)
		}
		if n <= sc.max {
			continue
		}
		ids, err := s.opts.Store.OldestMemories(ctx, userID, sc.agent, n-sc.max+1)
		if err != nil {
			return fmt.Errorf("finding the oldest memories: %w", err)
		}
		ids = slices.DeleteFunc(ids, func(id string) bool { return id == keep })
		ids = ids[:min(len(ids), n-sc.max)]
		if _, err := s.delete(ctx, userID, ids); err != nil {
			return err
		}
	}
	return nil
}

// Get returns a memory of userID (of any user when empty).
func (s *Service) Get(ctx context.Context, userID, id string) (*Memory, error) {
	return s.opts.Store.GetMemory(ctx, userID, id)
}

// Patch is a change to a memory; nil fields stay.
type Patch struct {
	Memory  *string
	Topics  *[]string
	Input   *string
	AgentID *string
	TeamID  *string
}

// Update changes a memory of userID (of any user when empty) and re-indexes
// it.
func (s *Service) Update(ctx context.Context, userID, id string, p Patch) (*Memory, error) {
	m, err := s.opts.Store.GetMemory(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	old := map[string]string{m.ID: indexText(m)}
	if p.Memory != nil {
		m.Memory = *p.Memory
	}
	if p.Topics != nil {
		m.Topics = slices.Clone(*p.Topics)
	}
	if p.Input != nil {
		m.Input = *p.Input
	}
	if p.AgentID != nil {
		m.AgentID = *p.AgentID
	}
	if p.TeamID != nil {
		m.TeamID = *p.TeamID
	}
	if err := normalize(m); err != nil {
		return nil, err
	}
	m.UpdatedAt = s.now()
	if err := s.opts.Store.UpdateMemory(ctx, m); err != nil {
		return nil, err
	}
	s.indexPut(ctx, []Memory{*m}, old)
	if p.AgentID != nil && m.AgentID != "" {
		if err := s.enforce(ctx, m.UserID, m.AgentID, m.ID); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Delete deletes memories of userID (any user's when empty) by id and
// returns the ids deleted; other users' and unknown ids are skipped.
func (s *Service) Delete(ctx context.Context, userID string, ids []string) ([]string, error) {
	return s.delete(ctx, userID, ids)
}

func (s *Service) delete(ctx context.Context, userID string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	gone, err := s.opts.Store.DeleteMemories(ctx, userID, ids)
	if err != nil {
		return nil, fmt.Errorf("deleting memories: %w", err)
	}
	s.indexRemove(ctx, gone)
	out := make([]string, len(gone))
	for i, m := range gone {
		out[i] = m.ID
	}
	return out, nil
}

// Kind and Erase make the service an eraser of DELETE /users/{user_id}
// (console/api.UserEraser): erasing a user deletes their memories.
func (s *Service) Kind() string { return "memories" }

// Erase deletes every memory of user; see Kind.
func (s *Service) Erase(ctx context.Context, user string) (int, error) {
	return s.DeleteUser(ctx, user)
}

// DeleteUser deletes every memory of userID and returns how many.
func (s *Service) DeleteUser(ctx context.Context, userID string) (int, error) {
	if userID == "" {
		return 0, fmt.Errorf("%w: deleting a user's memories needs a user_id", ErrInvalid)
	}
	gone, err := s.opts.Store.DeleteUserMemories(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("deleting the memories of user %s: %w", userID, err)
	}
	s.indexRemove(ctx, gone)
	return len(gone), nil
}

// List lists memories.
func (s *Service) List(ctx context.Context, q Query) ([]Memory, int, error) {
	return s.opts.Store.ListMemories(ctx, q)
}

// Topics returns the distinct topics of userID's memories (all users' when
// empty).
func (s *Service) Topics(ctx context.Context, userID string) ([]string, error) {
	return s.opts.Store.MemoryTopics(ctx, userID)
}

// Stats returns per-user statistics (userID non-empty: that user's only).
func (s *Service) Stats(ctx context.Context, userID string, limit, page int) ([]UserStats, int, error) {
	return s.opts.Store.MemoryStats(ctx, userID, limit, page)
}

// Recall returns up to k memories of userID relevant to query: those of
// agentID and those of no agent when agentID is set, all the user's
// otherwise. An empty query returns the k most recently updated.
//
// Scoring: the index ranks the user's memories by a dense list (cosine of
// the embeddings) and a BM25 list; the candidates are the best of the two
// fused by reciprocal rank (knowledge.Fuse), and a candidate's relevance is
// the mean of its dense and keyword scores, each divided by the best of its
// list (so in [0, 1]). The final score is relevance · (1 + w · recency),
// where recency = 0.5^(age/half-life) of the memory's last update
// (half-life 30 days, w = 0.05 by default): relevance decides, and among
// memories within about 5% of each other the fresher ranks first. Hits are re-read from SQL for
// userID, so a memory deleted or belonging to someone else is never
// returned, whatever the index holds.
func (s *Service) Recall(ctx context.Context, userID, agentID, query string, k int) ([]Memory, error) {
	if userID == "" {
		return nil, fmt.Errorf("%w: recalling memories needs a user_id", ErrInvalid)
	}
	if k <= 0 {
		k = 5
	}
	if strings.TrimSpace(query) == "" || s.opts.Index == nil {
		return s.recent(ctx, userID, agentID, k)
	}
	// A few more candidates than asked: the recency boost may reorder
	// neighbours, and stale index entries are dropped below.
	hits, err := s.opts.Index.search(ctx, userID, agentID, query, max(2*k, 20))
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.id
	}
	rows, err := s.opts.Store.MemoriesByID(ctx, userID, ids)
	if err != nil {
		return nil, fmt.Errorf("reading recalled memories: %w", err)
	}
	byID := make(map[string]Memory, len(rows))
	for _, m := range rows {
		if agentID == "" || m.AgentID == "" || m.AgentID == agentID {
			byID[m.ID] = m
		}
	}
	now := s.opts.Now()
	type scored struct {
		m     Memory
		score float64
	}
	out := make([]scored, 0, len(hits))
	for _, h := range hits {
		m, ok := byID[h.id]
		if !ok {
			continue
		}
		delete(byID, h.id)
		out = append(out, scored{m, h.relevance * (1 + s.opts.RecencyWeight*s.recency(now, m.UpdatedAt))})
	}
	slices.SortStableFunc(out, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return b.m.UpdatedAt.Compare(a.m.UpdatedAt)
	})
	ms := make([]Memory, 0, min(k, len(out)))
	for _, o := range out[:min(k, len(out))] {
		ms = append(ms, o.m)
	}
	return ms, nil
}

// recency is 0.5^(age/half-life), 1 for a memory updated now.
func (s *Service) recency(now, updated time.Time) float64 {
	age := max(now.Sub(updated), 0)
	return math.Exp2(-float64(age) / float64(s.opts.RecencyHalfLife))
}

func (s *Service) recent(ctx context.Context, userID, agentID string, k int) ([]Memory, error) {
	// The query cannot say "this agent or none", so read a page more and
	// filter; memories of other agents are not wanted here.
	var out []Memory
	for page := 1; len(out) < k; page++ {
		ms, total, err := s.opts.Store.ListMemories(ctx, Query{UserID: userID, Limit: 100, Page: page})
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if agentID == "" || m.AgentID == "" || m.AgentID == agentID {
				out = append(out, m)
			}
		}
		if page*100 >= total {
			break
		}
	}
	return out[:min(k, len(out))], nil
}

// indexPut and indexRemove keep the index in step with SQL. An index that
// fails is logged, not returned: SQL has the change, Recall re-checks SQL,
// and Sync repairs the index.
func (s *Service) indexPut(ctx context.Context, ms []Memory, old map[string]string) {
	if s.opts.Index == nil {
		return
	}
	if err := s.opts.Index.put(ctx, ms, old); err != nil {
		s.log.Warn("indexing memories", "err", err)
	}
}

func (s *Service) indexRemove(ctx context.Context, ms []Memory) {
	if s.opts.Index == nil || len(ms) == 0 {
		return
	}
	if err := s.opts.Index.remove(ctx, ms); err != nil {
		s.log.Warn("removing memories from the index", "err", err)
	}
}

// Sync prepares the index at start: it rebuilds the BM25 statistics from
// SQL and, when the index holds a different number of memories than SQL (an
// empty index, an index lost or left behind by a failure), re-indexes every
// memory. It returns the number of memories re-indexed.
func (s *Service) Sync(ctx context.Context) (int, error) {
	return s.sync(ctx, false)
}

// Reindex re-indexes every memory from SQL.
func (s *Service) Reindex(ctx context.Context) (int, error) {
	return s.sync(ctx, true)
}

func (s *Service) sync(ctx context.Context, force bool) (int, error) {
	x := s.opts.Index
	if x == nil {
		return 0, nil
	}
	st, err := s.opts.Store.MemoryIndexState(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the state of memories: %w", err)
	}
	have, err := x.count(ctx)
	if err != nil {
		return 0, err
	}
	if !force && have == st.Count {
		stats := &bm25.Stats{DF: map[uint32]int{}}
		err := s.opts.Store.AllMemories(ctx, func(m Memory) error {
			w, dl := bm25.Doc(indexText(&m), 0)
			stats.Add(w, dl)
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("reading memories: %w", err)
		}
		x.resetStats(stats)
		return 0, nil
	}
	x.resetStats(&bm25.Stats{DF: map[uint32]int{}})
	const batch = 256
	var buf []Memory
	n := 0
	flush := func() error {
		if err := x.put(ctx, buf, nil); err != nil {
			return err
		}
		n += len(buf)
		buf = buf[:0]
		return nil
	}
	err = s.opts.Store.AllMemories(ctx, func(m Memory) error {
		buf = append(buf, m)
		if len(buf) == batch {
			return flush()
		}
		return nil
	})
	if err == nil && len(buf) > 0 {
		err = flush()
	}
	if err != nil {
		return n, fmt.Errorf("re-indexing memories: %w", err)
	}
	s.log.Info("memories re-indexed", "memories", n)
	return n, nil
}
