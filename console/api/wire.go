package api

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/store"
)

// The JSON shapes of the native API. They follow Agno's AgentOS so clients
// written for it (such as Agent UI) work unchanged.

// Request bodies the handlers decode (JSON, or the same fields as a form).

// searchRequest is the body of POST /knowledge/search.
type searchRequest struct {
	Query       string         `json:"query" openapi:"required"`
	KnowledgeID string         `json:"knowledge_id"`
	SearchType  string         `json:"search_type"` // vector, keyword or hybrid
	MaxResults  int            `json:"max_results"` // 1 to 100
	Filters     map[string]any `json:"filters"`
	// MinScore drops hits scoring below it, 0 to 1; absent: each knowledge
	// base's search.min_score.
	MinScore *float64 `json:"min_score"`
}

// patchContentRequest is the body of PATCH /knowledge/content/{id}: the
// fields to change.
type patchContentRequest struct {
	Name        *string        `json:"name"`
	Description *string        `json:"description"`
	Metadata    map[string]any `json:"metadata"`
}

// uploadRequest documents the multipart form of POST /knowledge/content;
// the handler reads the fields one by one.
type uploadRequest struct {
	File          []byte `json:"file" openapi:"required"`
	Name          string `json:"name"`
	Description   string `json:"description"`
	Metadata      string `json:"metadata"` // a JSON object
	ChunkStrategy string `json:"chunk_strategy"`
	ChunkSize     int    `json:"chunk_size"`
	ChunkOverlap  int    `json:"chunk_overlap"`
}

// renameRequest is the body of POST /sessions/{id}/rename.
type renameRequest struct {
	SessionName string `json:"session_name" form:"session_name" openapi:"required"`
}

// summaryResponse is a session's summary, AgentOS's SessionSummary.
type summaryResponse struct {
	Summary   string    `json:"summary"`
	Topics    []string  `json:"topics"`
	UpdatedAt time.Time `json:"updated_at"`
}

// updateSessionRequest is the body of PATCH /sessions/{id}: the fields to
// change (AgentOS's session update); at least one is required.
type updateSessionRequest struct {
	SessionName *string         `json:"session_name,omitempty"`
	Summary     *summaryRequest `json:"summary,omitempty"`
}

// summaryRequest is a session summary sent by a client: its text and
// topics (updated_at is the server's).
type summaryRequest struct {
	Summary string   `json:"summary" openapi:"required"`
	Topics  []string `json:"topics,omitempty"`
}

// deleteSessionsRequest is the body of DELETE /sessions.
type deleteSessionsRequest struct {
	SessionIDs []string `json:"session_ids" openapi:"required"`
}

// healthResponse answers GET /health and GET /health/ready.
type healthResponse struct {
	Status         string     `json:"status"`
	InstantiatedAt *time.Time `json:"instantiated_at,omitempty"`
	Detail         string     `json:"detail,omitempty"`
}

// resumeRequest is the body of POST …/runs/{run_id}/resume, as JSON or as a
// form; AgentOS names the field last_event_index. Absent, the stream starts
// from the Last-Event-ID header, or from the first event.
type resumeRequest struct {
	LastEventIndex *int `json:"last_event_index" form:"last_event_index"`
}

// cancelResponse answers the cancel routes.
// backgroundRunResponse answers a run request with background=true (202).
type backgroundRunResponse struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	Status    string `json:"status"` // PENDING
}

type cancelResponse struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"` // cancelling
}

// contentStatusResponse answers GET /knowledge/content/{id}/status.
type contentStatusResponse struct {
	ID            string  `json:"id"`
	Status        string  `json:"status"`
	StatusMessage string  `json:"status_message"`
	Progress      float64 `json:"progress"`
	Chunks        int     `json:"chunks"`
}

// searchResponse answers POST /knowledge/search: one page of every hit.
type searchResponse struct {
	Data []searchHit `json:"data"`
	Meta searchMeta  `json:"meta"`
}

type searchMeta struct {
	pageMeta
	SearchTimeMS float64 `json:"search_time_ms"`
}

// traceResponse answers GET /traces/{trace_id}: the summary and the span
// tree.
type traceResponse struct {
	Trace traceSummary `json:"trace"`
	Tree  []*spanNode  `json:"tree"`
}

// dailyMetricsResponse answers GET /metrics, AgentOS's daily aggregates.
type dailyMetricsResponse struct {
	Metrics   []dayMetrics `json:"metrics"`
	UpdatedAt time.Time    `json:"updated_at"`
}

type dayMetrics struct {
	Date string `json:"date"`
	// AgentRunsCount and AgentRuns are the same number under AgentOS's
	// two names (likewise for teams).
	AgentRunsCount int            `json:"agent_runs_count"`
	TeamRunsCount  int            `json:"team_runs_count"`
	AgentRuns      int            `json:"agent_runs"`
	TeamRuns       int            `json:"team_runs"`
	SessionsCount  int            `json:"sessions_count"`
	UsersCount     int            `json:"users_count"`
	TokenMetrics   tokenMetrics   `json:"token_metrics"`
	ModelMetrics   []modelMetrics `json:"model_metrics"`
}

type tokenMetrics struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	TotalTokens  int `json:"total_tokens"`
	// Cost is the day's model cost in USD (Agno's metrics field name).
	Cost model.Cost `json:"cost"`
}

type modelMetrics struct {
	ModelID       string     `json:"model_id"`
	ModelProvider string     `json:"model_provider"`
	Count         int        `json:"count"`
	InputTokens   int        `json:"input_tokens"`
	OutputTokens  int        `json:"output_tokens"`
	Cost          model.Cost `json:"cost"`
}

type errorBody struct {
	Detail    string `json:"detail"`
	ErrorCode string `json:"error_code,omitempty"`
}

type modelInfo struct {
	Name     string `json:"name"`
	Model    string `json:"model"`
	Provider string `json:"provider"`
	// Demo is true for the offline echo model, so clients can tell users the
	// answers are not from a language model.
	Demo bool `json:"demo,omitempty"`
}

type toolInfo struct {
	Name        string `json:"name"`
	Type        string `json:"type"` // builtin, http, mcp
	Description string `json:"description,omitempty"`
}

type agentResponse struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	DBID         string     `json:"db_id"`
	Model        modelInfo  `json:"model"`
	Instructions string     `json:"instructions,omitempty"`
	Tools        []toolInfo `json:"tools"`
	Knowledge    []string   `json:"knowledge"`
	Status       string     `json:"status"`
	SpecVersion  string     `json:"spec_version"`
}

type teamResponse struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	DBID        string      `json:"db_id"`
	Model       modelInfo   `json:"model"`
	Mode        string      `json:"mode"`
	Members     []memberRef `json:"members"`
	Status      string      `json:"status"`
	SpecVersion string      `json:"spec_version"`
}

type memberRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"` // agent, team or a2a (a remote A2A agent)
}

type pageMeta struct {
	Page       int `json:"page"`
	Limit      int `json:"limit"`
	TotalPages int `json:"total_pages"`
	TotalCount int `json:"total_count"`
}

// newPageMeta describes page (1-based) of limit items out of total.
func newPageMeta(page, limit, total int) pageMeta {
	return pageMeta{Page: page, Limit: limit, TotalCount: total, TotalPages: pageCount(total, limit)}
}

// pageCount is how many pages of limit items total items fill.
func pageCount(total, limit int) int { return (total + limit - 1) / limit }

type paged[T any] struct {
	Data []T      `json:"data"`
	Meta pageMeta `json:"meta"`
}

type sessionResponse struct {
	SessionID    string         `json:"session_id"`
	SessionName  string         `json:"session_name"`
	SessionState map[string]any `json:"session_state"`
	// SessionSummary is the session's running summary (agents and teams
	// with summary on, or one set through PATCH); absent when it has none.
	SessionSummary *summaryResponse `json:"session_summary,omitempty"`
	SessionType    string           `json:"session_type"`
	AgentID        string           `json:"agent_id,omitempty"`
	TeamID         string           `json:"team_id,omitempty"`
	UserID         string           `json:"user_id,omitempty"`
	RunCount       int              `json:"run_count"`
	Cost           model.Cost       `json:"cost"`
	CreatedAt      time.Time        `json:"created_at"`
	UpdatedAt      time.Time        `json:"updated_at"`
}

func toSession(s *store.Session) sessionResponse {
	out := sessionResponse{
		SessionID: s.ID, SessionName: s.Name, SessionState: s.State, SessionType: s.Type,
		UserID: s.UserID, RunCount: s.RunCount, Cost: s.Cost, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
	if out.SessionState == nil {
		out.SessionState = map[string]any{}
	}
	if sum := s.Summary; sum != nil {
		out.SessionSummary = &summaryResponse{Summary: sum.Summary, Topics: sum.Topics, UpdatedAt: sum.UpdatedAt.UTC()}
		if out.SessionSummary.Topics == nil {
			out.SessionSummary.Topics = []string{}
		}
	}
	if s.Type == "team" {
		out.TeamID = s.ComponentID
	} else {
		out.AgentID = s.ComponentID
	}
	return out
}

type metricsResponse struct {
	InputTokens      int     `json:"input_tokens"`
	OutputTokens     int     `json:"output_tokens"`
	TotalTokens      int     `json:"total_tokens"`
	Duration         float64 `json:"duration"`                      // seconds
	TimeToFirstToken float64 `json:"time_to_first_token,omitempty"` // seconds
	ModelRequests    int     `json:"model_requests,omitempty"`
	ToolCalls        int     `json:"tool_calls,omitempty"`
	// Cost is in USD (Agno's field name); CostUnknown is set when a model
	// of the run has no price (see Model pricing).
	Cost        model.Cost `json:"cost"`
	CostUnknown bool       `json:"cost_unknown,omitempty"`
}

func toMetrics(m event.Metrics) metricsResponse {
	return metricsResponse{
		InputTokens: m.InputTokens, OutputTokens: m.OutputTokens, TotalTokens: m.TotalTokens,
		Duration: m.Duration.Seconds(), TimeToFirstToken: m.TimeToFirstToken.Seconds(),
		ModelRequests: m.ModelRequests, ToolCalls: m.ToolCalls, Cost: m.Cost, CostUnknown: m.CostUnknown,
	}
}

type toolResponse struct {
	ToolCallID    string         `json:"tool_call_id"`
	ToolName      string         `json:"tool_name"`
	ToolArgs      map[string]any `json:"tool_args"`
	Result        string         `json:"result,omitempty"`
	ToolCallError bool           `json:"tool_call_error"`
	Member        string         `json:"member,omitempty"`
	CreatedAt     int64          `json:"created_at"`
	Metrics       *struct {
		Duration float64 `json:"duration"`
	} `json:"metrics,omitempty"`
	// A PAUSED run's held calls are listed after its executed ones, with
	// what each waits for, as AgentOS lists them on a paused run.
	RequiresConfirmation      bool                   `json:"requires_confirmation,omitempty"`
	RequiresUserInput         bool                   `json:"requires_user_input,omitempty"`
	UserInputSchema           []event.UserInputField `json:"user_input_schema,omitempty"`
	ExternalExecutionRequired bool                   `json:"external_execution_required,omitempty"`
	ApprovalID                string                 `json:"approval_id,omitempty"`
	Reason                    string                 `json:"reason,omitempty"`
}

// heldTool is a paused run's held call as a tool of the run.
func heldTool(t event.ToolExecution) toolResponse {
	out := toolResponse{ToolCallID: t.ToolCallID, ToolName: t.ToolName, ToolArgs: t.ToolArgs, Member: t.Member,
		RequiresConfirmation: t.RequiresConfirmation, RequiresUserInput: t.RequiresUserInput, UserInputSchema: t.UserInputSchema,
		ExternalExecutionRequired: t.ExternalExecutionRequired, ApprovalID: t.ApprovalID, Reason: t.Reason}
	if out.ToolArgs == nil {
		out.ToolArgs = map[string]any{}
	}
	return out
}

func toTool(t event.ToolCall) toolResponse {
	out := toolResponse{ToolCallID: t.ID, ToolName: t.Name, ToolArgs: t.Args, Result: t.Result, ToolCallError: t.Error, Member: t.Member, CreatedAt: t.StartedAt.Unix()}
	if out.ToolArgs == nil {
		out.ToolArgs = map[string]any{}
	}
	if t.Duration > 0 {
		out.Metrics = &struct {
			Duration float64 `json:"duration"`
		}{t.Duration.Seconds()}
	}
	return out
}

func toTools(ts []event.ToolCall) []toolResponse {
	out := make([]toolResponse, len(ts))
	for i, t := range ts {
		out[i] = toTool(t)
	}
	return out
}

type runResponse struct {
	RunID       string `json:"run_id"`
	ParentRunID string `json:"parent_run_id,omitempty"`
	SessionID   string `json:"session_id"`
	AgentID     string `json:"agent_id,omitempty"`
	TeamID      string `json:"team_id,omitempty"`
	WorkflowID  string `json:"workflow_id,omitempty"`
	UserID      string `json:"user_id,omitempty"`
	Status      string `json:"status"`
	RunInput    string `json:"run_input"`
	Content     string `json:"content"`
	// Partial marks content as the part of the answer streamed before the
	// run was cancelled or failed.
	Partial           bool            `json:"partial,omitempty"`
	ContentType       string          `json:"content_type"`
	RunResponseFormat string          `json:"run_response_format"`
	Error             string          `json:"error,omitempty"`
	Model             string          `json:"model,omitempty"`
	ModelProvider     string          `json:"model_provider,omitempty"`
	Tools             []toolResponse  `json:"tools"`
	Messages          []any           `json:"messages,omitempty"`
	Metrics           metricsResponse `json:"metrics"`
	SpecVersion       string          `json:"spec_version,omitempty"`
	// Trigger names the trigger that started the run, if one did.
	Trigger    string            `json:"trigger,omitempty"`
	References []event.Reference `json:"references"`
	// ExtraData carries the references again in AgentOS's shape, which is
	// where Agent UI looks for them.
	ExtraData *extraData `json:"extra_data,omitempty"`
	// ReasoningSteps are the run's reasoning steps (AgentOS's
	// reasoning_steps); extra_data has them too, where Agent UI reads them.
	ReasoningSteps []event.Thought `json:"reasoning_steps,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// toRun is toRun with the content type of the agent's answer.
func (h *Handler) toRun(r *store.Run, withMessages bool) runResponse {
	out := toRun(r, withMessages)
	if out.AgentID != "" {
		out.ContentType = h.contentType(out.AgentID)
	}
	return out
}

// contentType is the content_type of an agent's answers: "str", or for an
// agent with an output_schema the schema's title, else "json". AgentOS
// reports the output schema's class name, which a Pydantic model's JSON
// schema carries as its title, so a client that switches on it keeps working.
// The agent's current spec decides, as the run's spec is not stored.
func (h *Handler) contentType(agentID string) string {
	a, ok := h.opts.Engine.Current().Agent(agentID)
	if !ok || a.Spec.OutputSchema == nil {
		return "str"
	}
	if title, ok := a.Spec.OutputSchema["title"].(string); ok && strings.TrimSpace(title) != "" {
		return strings.TrimSpace(title)
	}
	return "json"
}

func toRun(r *store.Run, withMessages bool) runResponse {
	out := runResponse{
		RunID: r.ID, ParentRunID: r.ParentRunID, SessionID: r.SessionID, UserID: r.UserID, Status: string(r.Status),
		RunInput: r.Input, Content: r.Content, Partial: r.Partial, ContentType: "str", RunResponseFormat: "text", Error: r.Error,
		Model: r.Model, ModelProvider: r.Provider, Tools: toTools(r.Tools), Metrics: toMetrics(r.Metrics),
		SpecVersion: r.SpecVersion, Trigger: r.Trigger, References: r.References, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if out.References == nil {
		out.References = []event.Reference{}
	}
	out.ExtraData = toExtraData(r.References, r.ReasoningSteps)
	out.ReasoningSteps = r.ReasoningSteps
	switch r.Type {
	case "team":
		out.TeamID = r.ComponentID
	case "workflow":
		out.WorkflowID = r.ComponentID
	default:
		out.AgentID = r.ComponentID
	}
	if withMessages {
		for _, m := range r.Messages {
			out.Messages = append(out.Messages, m)
		}
	}
	return out
}

// extraData is AgentOS's extra_data of a run and of its RunCompleted event.
// Troupe fills references and reasoning steps.
type extraData struct {
	References     []referencesOfQuery `json:"references,omitempty"`
	ReasoningSteps []event.Thought     `json:"reasoning_steps,omitempty"`
}

// referencesOfQuery is one knowledge search of a run: what it looked for,
// the passages it found and how long it took (AgentOS's MessageReferences).
type referencesOfQuery struct {
	Query      string             `json:"query"`
	References []referenceContent `json:"references"`
	Time       float64            `json:"time,omitempty"` // seconds
}

// referenceContent is one passage as Agno serializes a Document.
type referenceContent struct {
	Name     string            `json:"name"`
	Content  string            `json:"content"`
	MetaData referenceMetaData `json:"meta_data"`
}

type referenceMetaData struct {
	Chunk       int     `json:"chunk"`      // position in the document, from 1; 0 when unknown
	ChunkSize   int     `json:"chunk_size"` // characters of content
	DocumentID  string  `json:"document_id,omitempty"`
	KnowledgeID string  `json:"knowledge_id,omitempty"`
	Score       float64 `json:"score"`
	Page        int     `json:"page,omitempty"`
	Heading     string  `json:"heading,omitempty"`
}

// toExtraData groups references by the query that found them, in the order
// the searches ran, and adds the reasoning steps, or returns nil when there
// are neither. References stored before queries were recorded share one
// group with an empty query.
func toExtraData(refs []event.Reference, steps []event.Thought) *extraData {
	if len(refs) == 0 && len(steps) == 0 {
		return nil
	}
	if len(refs) == 0 {
		return &extraData{ReasoningSteps: steps}
	}
	var groups []referencesOfQuery
	at := map[string]int{}
	for _, r := range refs {
		i, ok := at[r.Query]
		if !ok {
			i = len(groups)
			at[r.Query] = i
			groups = append(groups, referencesOfQuery{Query: r.Query, References: []referenceContent{}, Time: r.SearchTime.Seconds()})
		}
		name := r.DocumentName
		if name == "" {
			name = r.DocumentID
		}
		groups[i].References = append(groups[i].References, referenceContent{Name: name, Content: r.Content, MetaData: referenceMetaData{
			Chunk: r.Chunk, ChunkSize: utf8.RuneCountInString(r.Content), DocumentID: r.DocumentID, KnowledgeID: r.KnowledgeID,
			Score: r.Score, Page: r.Page, Heading: r.Heading,
		}})
	}
	return &extraData{References: groups, ReasoningSteps: steps}
}
