// Package memory owns user memories: short facts about a user (a preference,
// a detail of their situation) that agents remember across sessions.
//
// SQL (the Store) is the source of truth. Retrieval goes through the
// knowledge stack: an Index keeps every memory as one chunk of a reserved
// knowledge base (ReservedKnowledgeID, a name no spec can declare, so the
// knowledge tools of agents never search it) in a knowledge.VectorStore, with
// a dense vector from a knowledge.Embedder and BM25 weights, searched in
// hybrid mode and fused by reciprocal rank (knowledge.Fuse). Hits are always
// re-read from SQL for the user asking, so isolation never rests on the index;
// the index is rebuilt from SQL when it is empty or stale (Service.Sync).
package memory

import (
	"context"
	"errors"
	"time"
)

// ReservedKnowledgeID is the knowledge id memories are indexed under. Spec
// names start with a letter or digit, so no knowledge base, and no agent's
// knowledge tool, can name it.
const ReservedKnowledgeID = "_memories"

// Memory is one memory of a user. Its JSON is AgentOS's UserMemory.
type Memory struct {
	ID      string `json:"memory_id"`
	UserID  string `json:"user_id"`
	AgentID string `json:"agent_id,omitempty"`
	TeamID  string `json:"team_id,omitempty"`
	// Memory is the remembered fact.
	Memory string   `json:"memory"`
	Topics []string `json:"topics"`
	// Input is what the memory came from (the user's message), if known.
	Input     string    `json:"input,omitempty"`
	RunID     string    `json:"run_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Errors.
var (
	// ErrNotFound: no such memory of the user (a memory of another user is
	// not found either, so that its existence does not leak).
	ErrNotFound = errors.New("memory not found")
	// ErrInvalid wraps errors about arguments out of range.
	ErrInvalid = errors.New("invalid memory request")
)

// Sort keys of Query.SortBy.
const (
	SortUpdatedAt = "updated_at"
	SortCreatedAt = "created_at"
	SortMemory    = "memory"
)

// Query lists memories. Empty fields do not filter.
type Query struct {
	UserID  string
	AgentID string
	TeamID  string
	// Topics keeps memories that carry every one of them.
	Topics []string
	// Search keeps memories whose text contains it, ignoring case.
	Search string
	// IDs keeps the memories with these ids.
	IDs       []string
	Limit     int    // default 20, at most 1000
	Page      int    // 1-based
	SortBy    string // updated_at (default), created_at or memory
	SortOrder string // desc (default) or asc
}

// UserStats are a user's memory statistics (AgentOS UserMemoryStats).
type UserStats struct {
	UserID              string    `json:"user_id"`
	TotalMemories       int       `json:"total_memories"`
	LastMemoryUpdatedAt time.Time `json:"last_memory_updated_at"`
}

// IndexState summarises the memories in SQL, to tell whether an index built
// from them is stale.
type IndexState struct {
	Count int
	// LastUpdatedAt is the latest UpdatedAt of any memory.
	LastUpdatedAt time.Time
}

// Store persists memories; the store package implements it in SQL. Every
// method taking a userID is constrained to that user's memories: an id of
// another user's memory behaves as unknown. GetMemory and DeleteMemories
// take an empty userID as "any user", for callers not bound to one (an
// unbound API key); keys bound to a user always pass theirs.
type Store interface {
	// CreateMemory inserts m (ID, timestamps set by the caller).
	CreateMemory(ctx context.Context, m *Memory) error
	// GetMemory returns a memory of userID, ErrNotFound when it has none
	// with that id.
	GetMemory(ctx context.Context, userID, id string) (*Memory, error)
	// UpdateMemory writes m's memory, topics, input, agent, team and
	// UpdatedAt, where m.ID is a memory of m.UserID; ErrNotFound otherwise.
	UpdateMemory(ctx context.Context, m *Memory) error
	// DeleteMemories deletes the memories of userID with these ids and
	// returns them (foreign and unknown ids are skipped).
	DeleteMemories(ctx context.Context, userID string, ids []string) ([]Memory, error)
	// ListMemories returns one page and the total matching q.
	ListMemories(ctx context.Context, q Query) ([]Memory, int, error)
	// MemoryTopics returns the distinct topics of userID's memories (all
	// users' when userID is empty), sorted.
	MemoryTopics(ctx context.Context, userID string) ([]string, error)
	// MemoryStats returns per-user statistics, most recently updated
	// first, one page and the number of users; userID non-empty restricts
	// them to that user.
	MemoryStats(ctx context.Context, userID string, limit, page int) ([]UserStats, int, error)
	// CountMemories counts userID's memories, only those of agentID when
	// it is non-empty.
	CountMemories(ctx context.Context, userID, agentID string) (int, error)
	// OldestMemories returns the ids of userID's n least recently updated
	// memories (of agentID when non-empty).
	OldestMemories(ctx context.Context, userID, agentID string, n int) ([]string, error)
	// DeleteUserMemories deletes every memory of userID and returns them.
	DeleteUserMemories(ctx context.Context, userID string) ([]Memory, error)
	// MemoriesByID returns userID's memories among ids, in no order.
	MemoriesByID(ctx context.Context, userID string, ids []string) ([]Memory, error)
	// AllMemories streams every memory (to rebuild the index), by pages:
	// fn is called with no query open, so it may write.
	AllMemories(ctx context.Context, fn func(Memory) error) error
	// MemoryIndexState summarises all memories.
	MemoryIndexState(ctx context.Context) (IndexState, error)
}
