package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
)

// Names of the memory tools.
const (
	RememberTool = "remember"
	ForgetTool   = "forget"
	RecallTool   = "recall"
	// maxRecallTool bounds the memories one recall call returns.
	maxRecallTool = 20
)

// Scope is whose memories a runner's tools write and read: the run's user
// always (taken from the run, never from the model's arguments), keyed by
// AgentID when the memory is scoped to the agent, and marked with TeamID
// for a team's leader.
type Scope struct {
	AgentID string
	TeamID  string
}

// Tools returns the remember, forget and recall tools of a runner with
// memory: agentic. Each acts on the memories of the user of the run it
// serves only, so a model can neither read nor change another user's.
func (s *Service) Tools(sc Scope) []tool.Tool {
	return []tool.Tool{&remember{s, sc}, &forget{s, sc}, &recall{s, sc}}
}

var (
	_ tool.Tool = (*remember)(nil)
	_ tool.Tool = (*forget)(nil)
	_ tool.Tool = (*recall)(nil)
)

// runUser returns the user of the run ctx's call serves.
func runUser(ctx context.Context) (tool.Run, error) {
	r, _ := tool.RunOf(ctx)
	if r.UserID == "" {
		return r, errors.New("this conversation has no user, and memories belong to a user: the caller must send a user_id with the run")
	}
	return r, nil
}

type remember struct {
	s  *Service
	sc Scope
}

func (t *remember) Def() model.ToolDef {
	return model.ToolDef{
		Name:        RememberTool,
		Description: "Remember a fact about the user (a preference, a detail of their situation, a goal) for future conversations. Write one self-contained fact per call, in the third person.",
		Parameters: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"memory": map[string]any{"type": "string", "description": "The fact, e.g. \"The user is vegetarian.\""},
				"topics": map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "Short topics for the fact (optional)."},
			},
			"required": []any{"memory"},
		},
	}
}

func (t *remember) Call(ctx context.Context, args json.RawMessage) (string, error) {
	var in struct {
		Memory string   `json:"memory"`
		Topics []string `json:"topics"`
	}
	if err := tool.Decode(args, &in); err != nil {
		return "", err
	}
	r, err := runUser(ctx)
	if err != nil {
		return "", err
	}
	m, err := t.s.Add(ctx, &Memory{UserID: r.UserID, AgentID: t.sc.AgentID, TeamID: t.sc.TeamID, Memory: in.Memory, Topics: in.Topics,
		RunID: r.RunID, SessionID: r.SessionID})
	if errors.Is(err, ErrInvalid) {
		return "", tool.ArgumentError("%v", err)
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Remembered (memory_id %s).", m.ID), nil
}

type forget struct {
	s  *Service
	sc Scope
}

func (t *forget) Def() model.ToolDef {
	return model.ToolDef{
		Name:        ForgetTool,
		Description: "Forget a memory of the user that is wrong or that they asked you to forget, by its memory_id (shown with the memories, or found with recall).",
		Parameters: map[string]any{
			"type":       "object",
			"properties": map[string]any{"memory_id": map[string]any{"type": "string", "description": "The memory's id."}},
			"required":   []any{"memory_id"},
		},
	}
}

func (t *forget) Call(ctx context.Context, args json.RawMessage) (string, error) {
	var in struct {
		ID string `json:"memory_id"`
	}
	if err := tool.Decode(args, &in); err != nil {
		return "", err
	}
	r, err := runUser(ctx)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(in.ID) == "" {
		return "", tool.ArgumentError("memory_id is empty: give the id of the memory to forget")
	}
	// Constrained to the run's user: another user's id is unknown here.
	gone, err := t.s.Delete(ctx, r.UserID, []string{in.ID})
	if err != nil {
		return "", err
	}
	if len(gone) == 0 {
		return "", tool.ArgumentError("the user has no memory %s: use recall to find the memory's id", in.ID)
	}
	return "Forgotten.", nil
}

type recall struct {
	s  *Service
	sc Scope
}

func (t *recall) Def() model.ToolDef {
	return model.ToolDef{
		Name:        RecallTool,
		Description: "Search what you remember about the user: returns their memories most relevant to the query, with ids.",
		Parameters: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"query": map[string]any{"type": "string", "description": "What to look for; empty returns the most recent memories."},
				"limit": map[string]any{"type": "integer", "description": "How many memories, 1 to 20 (default 5)."},
			},
		},
	}
}

func (t *recall) Call(ctx context.Context, args json.RawMessage) (string, error) {
	var in struct {
		Query string `json:"query"`
		Limit int    `json:"limit"`
	}
	if err := tool.Decode(args, &in); err != nil {
		return "", err
	}
	r, err := runUser(ctx)
	if err != nil {
		return "", err
	}
	k := in.Limit
	if k <= 0 {
		k = 5
	}
	ms, err := t.s.Recall(ctx, r.UserID, t.sc.AgentID, in.Query, min(k, maxRecallTool))
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "No memories found.", nil
	}
	type hit struct {
		ID     string   `json:"memory_id"`
		Memory string   `json:"memory"`
		Topics []string `json:"topics,omitempty"`
	}
	out := make([]hit, len(ms))
	for i, m := range ms {
		out[i] = hit{m.ID, m.Memory, m.Topics}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("encoding memories: %w", err)
	}
	return string(b), nil
}
