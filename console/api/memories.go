package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine/memory"
)

// Memories is what the memory routes need of the memory service.
type Memories interface {
	Add(ctx context.Context, m *memory.Memory) (*memory.Memory, error)
	Get(ctx context.Context, userID, id string) (*memory.Memory, error)
	Update(ctx context.Context, userID, id string, p memory.Patch) (*memory.Memory, error)
	Delete(ctx context.Context, userID string, ids []string) ([]string, error)
	List(ctx context.Context, q memory.Query) ([]memory.Memory, int, error)
	Topics(ctx context.Context, userID string) ([]string, error)
	Stats(ctx context.Context, userID string, limit, page int) ([]memory.UserStats, int, error)
}

var _ Memories = (*memory.Service)(nil)

// memoryResponse is AgentOS's UserMemorySchema, with the fields Troupe adds.
type memoryResponse struct {
	MemoryID  string    `json:"memory_id"`
	Memory    string    `json:"memory"`
	Topics    []string  `json:"topics"`
	AgentID   string    `json:"agent_id,omitempty"`
	TeamID    string    `json:"team_id,omitempty"`
	UserID    string    `json:"user_id"`
	Input     string    `json:"input,omitempty"`
	RunID     string    `json:"run_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toMemory(m *memory.Memory) memoryResponse {
	topics := m.Topics
	if topics == nil {
		topics = []string{}
	}
	return memoryResponse{MemoryID: m.ID, Memory: m.Memory, Topics: topics, AgentID: m.AgentID, TeamID: m.TeamID, UserID: m.UserID,
		Input: m.Input, RunID: m.RunID, SessionID: m.SessionID, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

// memoryRequest creates a memory (AgentOS UserMemoryCreateSchema) or
// changes one (PATCH: absent fields stay).
type memoryRequest struct {
	Memory  *string   `json:"memory" openapi:"required"`
	UserID  string    `json:"user_id"`
	Topics  *[]string `json:"topics"`
	AgentID *string   `json:"agent_id"`
	TeamID  *string   `json:"team_id"`
	Input   *string   `json:"input"`
}

type deleteMemoriesRequest struct {
	MemoryIDs []string `json:"memory_ids" openapi:"required"`
	UserID    string   `json:"user_id"`
}

type userMemoryStatsResponse struct {
	UserID              string    `json:"user_id"`
	TotalMemories       int       `json:"total_memories"`
	LastMemoryUpdatedAt time.Time `json:"last_memory_updated_at"`
}

// memoryUser is the user a memory request acts for: the user a bound key
// is tied to, whatever the request names; otherwise the one it names
// (empty: any user).
func memoryUser(c *gin.Context, requested string) string {
	return auth.Of(c).UserID(requested)
}

func (h *Handler) listMemories(c *gin.Context) error {
	q := memory.Query{UserID: memoryUser(c, c.Query("user_id")), AgentID: c.Query("agent_id"), TeamID: c.Query("team_id"),
		Search: c.Query("search_content"), SortBy: c.Query("sort_by"), SortOrder: c.Query("sort_order")}
	for _, t := range c.QueryArray("topics") {
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				q.Topics = append(q.Topics, s)
			}
		}
	}
	var err error
	if q.Limit, q.Page, err = paging(c); err != nil {
		return err
	}
	ms, total, err := h.opts.Memories.List(c.Request.Context(), q)
	if err != nil {
		return err
	}
	out := paged[memoryResponse]{Data: make([]memoryResponse, len(ms)), Meta: newPageMeta(q.Page, q.Limit, total)}
	for i := range ms {
		out.Data[i] = toMemory(&ms[i])
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func decodeBody(c *gin.Context, v any) error {
	if err := json.NewDecoder(c.Request.Body).Decode(v); err != nil {
		return BodyError(err)
	}
	return nil
}

func (h *Handler) createMemory(c *gin.Context) error {
	var body memoryRequest
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	m := memory.Memory{UserID: memoryUser(c, body.UserID)}
	if m.UserID == "" {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "user_id is required: name the user the memory belongs to"}
	}
	if body.Memory != nil {
		m.Memory = *body.Memory
	}
	if body.Topics != nil {
		m.Topics = *body.Topics
	}
	for _, f := range []struct {
		dst *string
		src *string
	}{{&m.AgentID, body.AgentID}, {&m.TeamID, body.TeamID}, {&m.Input, body.Input}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	created, err := h.opts.Memories.Add(c.Request.Context(), &m)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, toMemory(created))
	return nil
}

func (h *Handler) getMemory(c *gin.Context) error {
	m, err := h.opts.Memories.Get(c.Request.Context(), memoryUser(c, c.Query("user_id")), c.Param("memory_id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toMemory(m))
	return nil
}

func (h *Handler) patchMemory(c *gin.Context) error {
	var body memoryRequest
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	user := body.UserID
	if user == "" {
		user = c.Query("user_id")
	}
	m, err := h.opts.Memories.Update(c.Request.Context(), memoryUser(c, user), c.Param("memory_id"),
		memory.Patch{Memory: body.Memory, Topics: body.Topics, Input: body.Input, AgentID: body.AgentID, TeamID: body.TeamID})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toMemory(m))
	return nil
}

func (h *Handler) deleteMemory(c *gin.Context) error {
	id := c.Param("memory_id")
	gone, err := h.opts.Memories.Delete(c.Request.Context(), memoryUser(c, c.Query("user_id")), []string{id})
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		return errMemoryNotFound(id)
	}
	c.Status(http.StatusNoContent)
	return nil
}

func errMemoryNotFound(id string) error {
	return &Error{Status: http.StatusNotFound, Msg: "memory " + id + " not found"}
}

func (h *Handler) deleteMemories(c *gin.Context) error {
	var body deleteMemoriesRequest
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if len(body.MemoryIDs) == 0 || len(body.MemoryIDs) > 1000 {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "memory_ids must list 1 to 1000 memory ids"}
	}
	user := body.UserID
	if user == "" {
		user = c.Query("user_id")
	}
	// Ids of other users' memories are skipped, as unknown ids are: the
	// answer never tells which exist.
	if _, err := h.opts.Memories.Delete(c.Request.Context(), memoryUser(c, user), body.MemoryIDs); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (h *Handler) memoryTopics(c *gin.Context) error {
	topics, err := h.opts.Memories.Topics(c.Request.Context(), memoryUser(c, c.Query("user_id")))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, topics)
	return nil
}

func (h *Handler) userMemoryStats(c *gin.Context) error {
	limit, page, err := paging(c)
	if err != nil {
		return err
	}
	stats, total, err := h.opts.Memories.Stats(c.Request.Context(), memoryUser(c, c.Query("user_id")), limit, page)
	if err != nil {
		return err
	}
	out := paged[userMemoryStatsResponse]{Data: make([]userMemoryStatsResponse, len(stats)), Meta: newPageMeta(page, limit, total)}
	for i, s := range stats {
		out.Data[i] = userMemoryStatsResponse(s)
	}
	c.JSON(http.StatusOK, out)
	return nil
}
