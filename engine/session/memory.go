package session

import (
	"context"
	"strings"

	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/spec"
)

// Memories recalls a user's memories for a run's context (memory.Service).
type Memories interface {
	// Recall returns up to k memories of userID relevant to query, those
	// of agentID and of no agent when agentID is set.
	Recall(ctx context.Context, userID, agentID, query string, k int) ([]memory.Memory, error)
}

var _ Memories = (*memory.Service)(nil)

// memorizer is a runner with memory (agent.Agent, team.Team).
type memorizer interface {
	Memory() *spec.Memory
}

// MemoryOf returns the memory of a runner, nil without one.
func MemoryOf(r any) *spec.Memory {
	if m, ok := r.(memorizer); ok {
		return m.Memory()
	}
	return nil
}

// MemoryAgentID is the agent id memories of runner name are kept and
// recalled under: its name when its memory is scoped to it, "" (the
// user's memories of every agent) otherwise.
func MemoryAgentID(m *spec.Memory, name string) string {
	if m != nil && m.AgentScoped() {
		return name
	}
	return ""
}

// MemoryPrompt is the section of the instructions that carries the user's
// memories, most relevant first, delimited so the model tells them from
// the instructions. withIDs shows each memory's id (for a model with the
// forget tool).
func MemoryPrompt(ms []memory.Memory, withIDs bool) string {
	if len(ms) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("<user_memories>\nWhat you remember about the user from earlier conversations, most relevant first; use it when it helps:\n")
	for _, m := range ms {
		b.WriteString("- ")
		if withIDs {
			b.WriteString("[" + m.ID + "] ")
		}
		b.WriteString(strings.ReplaceAll(strings.TrimSpace(m.Memory), "\n", " "))
		if len(m.Topics) > 0 {
			b.WriteString(" (topics: " + strings.Join(m.Topics, ", ") + ")")
		}
		b.WriteByte('\n')
	}
	b.WriteString("</user_memories>")
	return b.String()
}

// recallMemories loads the memories of the turn's user into its context:
// one Recall, only for a run with a user whose runner has memory and
// recall above 0. A run without a user id gets no memories: memories
// belong to a user, and an anonymous caller has none. A failure is logged
// and the run answers without memories.
func (t *Turn) recallMemories(ctx context.Context) {
	m := MemoryOf(t.runner)
	if m == nil || t.p.UserID == "" || t.s.opts.Memories == nil || m.RecallK() <= 0 || t.resume != nil {
		return
	}
	ms, err := t.s.opts.Memories.Recall(ctx, t.p.UserID, MemoryAgentID(m, t.p.Name), t.p.Message, m.RecallK())
	if err != nil {
		t.s.log.Warn("recalling the user's memories; answering without them", "run_id", t.run.ID, "user_id", t.p.UserID, "err", err)
		return
	}
	t.memories = MemoryPrompt(ms, m.Tools())
}
