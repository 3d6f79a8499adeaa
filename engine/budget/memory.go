package budget

import (
	"context"
	"sync"
)

// Memory is a Store in process memory, for `troupe run`, which has no
// database: budgets then hold within the one process (per: run budgets, and
// the other kinds for the runs of that process).
type Memory struct {
	mu     sync.Mutex
	totals map[Key]Usage
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{totals: map[Key]Usage{}} }

// BudgetUsage implements Store.
func (m *Memory) BudgetUsage(_ context.Context, keys []Key) ([]Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Usage, len(keys))
	for i, k := range keys {
		out[i] = m.totals[k]
	}
	return out, nil
}

// AddBudgetUsage implements Store.
func (m *Memory) AddBudgetUsage(_ context.Context, keys []Key, d Usage) ([]Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Usage, len(keys))
	for i, k := range keys {
		u := m.totals[k]
		u.Cost += d.Cost
		u.Tokens += d.Tokens
		u.ToolCalls += d.ToolCalls
		u.WallTime += d.WallTime
		m.totals[k] = u
		out[i] = u
	}
	return out, nil
}
