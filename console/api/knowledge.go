package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

type contentResponse struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	// Size is the byte count as a string, as AgentOS answers it (its
	// ContentResponseSchema has size: Optional[str]); clients parse it.
	Size          string         `json:"size"`
	KnowledgeID   string         `json:"knowledge_id"`
	LinkedTo      string         `json:"linked_to"`
	Source        string         `json:"source"`
	Metadata      map[string]any `json:"metadata"`
	Status        string         `json:"status"`
	StatusMessage string         `json:"status_message"`
	Progress      float64        `json:"progress"`
	Chunks        int            `json:"chunks"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

func toContent(d *knowledge.Document) contentResponse {
	md := d.Metadata
	if md == nil {
		md = map[string]any{}
	}
	return contentResponse{ID: d.ID, Name: d.Name, Description: d.Description, Type: d.Type, Size: strconv.FormatInt(d.Size, 10),
		KnowledgeID: d.KnowledgeID, LinkedTo: d.KnowledgeID, Source: d.Source, Metadata: md, Status: d.Status, StatusMessage: d.Message,
		Progress: d.Progress, Chunks: d.Chunks, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
}

// knowledgeID picks the knowledge base of a request: the knowledge_id query
// parameter or form field, or the only configured base.
func knowledgeID(c *gin.Context, k Uploads) (string, error) {
	id := c.Query("knowledge_id")
	if id == "" {
		id = c.PostForm("knowledge_id")
	}
	if id != "" {
		return id, nil
	}
	bases := k.Bases()
	if len(bases) == 1 {
		return bases[0].Name, nil
	}
	names := make([]string, len(bases))
	for i, b := range bases {
		names[i] = b.Name
	}
	return "", &Error{Status: http.StatusUnprocessableEntity, Msg: "knowledge_id is required; knowledge bases: " + strings.Join(names, ", ")}
}

// uploadContent answers POST /knowledge/content: multipart with a file, a url
// or text_content, plus name, description, metadata (JSON) and chunking
// overrides. It returns 202 with the document's id and status.
func (h *Handler) uploadContent(c *gin.Context) error {
	d, err := ReadUpload(c, h.opts.Knowledge)
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, toContent(d))
	return nil
}

// Uploads is what ReadUpload needs from the knowledge service.
type Uploads interface {
	Bases() []*spec.Knowledge
	Submit(ctx context.Context, u kb.Upload) (*knowledge.Document, bool, error)
	FetchURL(ctx context.Context, knowledgeID, url string) ([]byte, string, error)
	MaxBytes() int64
}

// ReadUpload reads an upload form and queues the document for ingestion in
// k; the API and the console's upload both use it. Errors are *Error or the
// knowledge service's.
func ReadUpload(c *gin.Context, k Uploads) (*knowledge.Document, error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, k.MaxBytes()+1<<20)
	if err := c.Request.ParseMultipartForm(8 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("upload is larger than the %d byte limit", k.MaxBytes())}
		}
		return nil, &Error{Status: http.StatusBadRequest, Msg: "malformed upload: " + err.Error()}
	}
	kbID, err := knowledgeID(c, k)
	if err != nil {
		return nil, err
	}
	u := kb.Upload{KnowledgeID: kbID, Name: c.PostForm("name"), Description: c.PostForm("description"), ChunkStrategy: c.PostForm("chunk_strategy")}
	if md := c.PostForm("metadata"); md != "" {
		if err := json.Unmarshal([]byte(md), &u.Metadata); err != nil {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: "metadata must be a JSON object: " + err.Error()}
		}
	}
	for _, f := range []struct {
		name string
		into *int
	}{{"chunk_size", &u.ChunkSize}, {"chunk_overlap", &u.ChunkOverlap}} {
		if v := c.PostForm(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: f.name + " must be a non-negative whole number"}
			}
			*f.into = n
		}
	}
	switch fh, ferr := c.FormFile("file"); {
	case ferr == nil:
		f, err := fh.Open()
		if err != nil {
			return nil, &Error{Status: http.StatusBadRequest, Msg: "reading the uploaded file: " + err.Error()}
		}
		u.Content, err = io.ReadAll(io.LimitReader(f, k.MaxBytes()+1))
		f.Close()
		if err != nil {
			return nil, &Error{Status: http.StatusBadRequest, Msg: "reading the uploaded file: " + err.Error()}
		}
		if u.Name == "" {
			u.Name = fh.Filename
		}
	case c.PostForm("url") != "":
		url := c.PostForm("url")
		data, name, err := k.FetchURL(c.Request.Context(), kbID, url)
		if err != nil {
			if errors.Is(err, kb.ErrTooLarge) {
				return nil, err
			}
			return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: err.Error()}
		}
		u.Content, u.Source = data, "upload:"+url
		if u.Name == "" {
			u.Name = name
		}
	case c.PostForm("text_content") != "":
		u.Content, u.Source = []byte(c.PostForm("text_content")), "text"
		if u.Name == "" {
			u.Name = "text.txt"
		}
	default:
		return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: "send a file, a url or text_content"}
	}
	d, _, err := k.Submit(c.Request.Context(), u)
	return d, err
}

func (h *Handler) listContent(c *gin.Context) error {
	q := knowledge.DocumentQuery{KnowledgeID: c.Query("knowledge_id"), Status: c.Query("status"), SortBy: c.Query("sort_by"), SortOrder: c.Query("sort_order")}
	switch q.SortBy {
	case "", "created_at", "updated_at", "name", "size":
	default:
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "sort_by must be created_at, updated_at, name or size"}
	}
	if q.SortOrder != "" && q.SortOrder != "asc" && q.SortOrder != "desc" {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "sort_order must be asc or desc"}
	}
	var err error
	if q.Limit, q.Page, err = paging(c); err != nil {
		return err
	}
	docs, total, err := h.opts.Knowledge.List(c.Request.Context(), q)
	if err != nil {
		return err
	}
	out := paged[contentResponse]{Data: make([]contentResponse, len(docs)), Meta: newPageMeta(q.Page, q.Limit, total)}
	for i := range docs {
		out.Data[i] = toContent(&docs[i])
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (h *Handler) getContent(c *gin.Context) error {
	d, err := h.opts.Knowledge.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toContent(d))
	return nil
}

func (h *Handler) contentStatus(c *gin.Context) error {
	d, err := h.opts.Knowledge.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, contentStatusResponse{ID: d.ID, Status: d.Status, StatusMessage: d.Message, Progress: d.Progress, Chunks: d.Chunks})
	return nil
}

func (h *Handler) patchContent(c *gin.Context) error {
	var body patchContentRequest
	if strings.HasPrefix(c.GetHeader("Content-Type"), "application/json") {
		if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil {
			return BodyError(err)
		}
	} else {
		if v, ok := c.GetPostForm("name"); ok {
			body.Name = &v
		}
		if v, ok := c.GetPostForm("description"); ok {
			body.Description = &v
		}
		if md := c.PostForm("metadata"); md != "" {
			if err := json.Unmarshal([]byte(md), &body.Metadata); err != nil {
				return &Error{Status: http.StatusUnprocessableEntity, Msg: "metadata must be a JSON object"}
			}
		}
	}
	d, err := h.opts.Knowledge.Patch(c.Request.Context(), c.Param("id"), body.Name, body.Description, body.Metadata)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, toContent(d))
	return nil
}

func (h *Handler) deleteContent(c *gin.Context) error {
	if err := h.opts.Knowledge.Delete(c.Request.Context(), c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (h *Handler) retryContent(c *gin.Context) error {
	d, err := h.opts.Knowledge.Retry(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, toContent(d))
	return nil
}

// syncKnowledge answers POST /knowledge/{id}/sync: it syncs the knowledge
// base's sources now (files, and every URL source with a conditional GET)
// and says what changed.
func (h *Handler) syncKnowledge(c *gin.Context) error {
	res, err := h.opts.Knowledge.Sync(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, syncResponse{KnowledgeID: c.Param("id"), SyncResult: res})
	return nil
}

// syncResponse is POST /knowledge/{id}/sync.
type syncResponse struct {
	KnowledgeID string `json:"knowledge_id"`
	kb.SyncResult
}

// knowledgeConfigResponse is GET /knowledge/config.
type knowledgeConfigResponse struct {
	kb.Config
	Bases []knowledgeBase `json:"knowledge_bases"`
}

func (knowledgeConfigResponse) OpenAPIName() string { return "KnowledgeConfig" }

type knowledgeBase struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Store       string   `json:"store"`
	Embedder    string   `json:"embedder"`
	SearchMode  string   `json:"search_mode"`
	TopK        int      `json:"top_k"`
	Chunking    chunking `json:"chunking"`
}

// chunking is a base's chunking in the API's snake_case; spec.Chunking has
// YAML names only, and encoding it leaked Go's field names (Strategy, Size).
type chunking struct {
	Strategy string `json:"strategy"`
	Size     int    `json:"size" doc:"target chunk size in tokens"`
	Overlap  int    `json:"overlap" doc:"tokens shared by consecutive chunks"`
}

func (h *Handler) knowledgeConfig(c *gin.Context) error {
	out := knowledgeConfigResponse{Config: h.opts.Knowledge.Config()}
	for _, b := range h.opts.Knowledge.Bases() {
		out.Bases = append(out.Bases, knowledgeBase{ID: b.Name, Name: b.Name, Description: b.Description, Store: b.Store.Type,
			Embedder: b.Embedder.String(), SearchMode: b.Search.Mode, TopK: b.Search.TopK,
			Chunking: chunking{Strategy: b.Chunking.Strategy, Size: b.Chunking.Size, Overlap: b.Chunking.Overlap}})
	}
	c.JSON(http.StatusOK, out)
	return nil
}

type searchHit struct {
	ID          string         `json:"id"`
	Content     string         `json:"content"`
	Name        string         `json:"name"`
	ContentID   string         `json:"content_id"`
	KnowledgeID string         `json:"knowledge_id"`
	ChunkIndex  int            `json:"chunk_index"`
	Page        int            `json:"page,omitempty"`
	Heading     string         `json:"heading,omitempty"`
	Score       float64        `json:"score"`
	MetaData    map[string]any `json:"meta_data"`
}

// Bases lists the knowledge bases (the knowledge service does).
type Bases interface{ Bases() []*spec.Knowledge }

// SearchIDs are the knowledge bases a search covers: the one named, or
// every base k has.
func SearchIDs(k Bases, id string) []string {
	if id != "" {
		return []string{id}
	}
	var ids []string
	for _, b := range k.Bases() {
		ids = append(ids, b.Name)
	}
	return ids
}

func (h *Handler) searchKnowledge(c *gin.Context) error {
	var body searchRequest
	if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil {
		return BodyError(err)
	}
	if strings.TrimSpace(body.Query) == "" {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "query is required"}
	}
	switch body.SearchType {
	case "", knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid:
	default:
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "search_type must be vector, keyword or hybrid"}
	}
	if body.MaxResults < 0 || body.MaxResults > 100 {
		return &Error{Status: http.StatusUnprocessableEntity, Msg: "max_results must be from 1 to 100"}
	}
	start := time.Now()
	ids := SearchIDs(h.opts.Knowledge, body.KnowledgeID)
	// meta.limit is the limit asked for (or the bases' top_k it defaults
	// to), not how many hits there were: a client pages by it.
	limit := body.MaxResults
	if limit == 0 {
		for _, b := range h.opts.Knowledge.Bases() {
			if len(ids) == 0 || slices.Contains(ids, b.Name) {
				limit = max(limit, b.Search.TopK)
			}
		}
	}
	hits, err := h.opts.Knowledge.SearchWith(c.Request.Context(), kb.SearchRequest{
		KnowledgeIDs: ids, Query: body.Query, Mode: body.SearchType,
		TopK: body.MaxResults, Filters: body.Filters, MinScore: body.MinScore,
	})
	if err != nil {
		return err
	}
	out := make([]searchHit, len(hits))
	for i, h := range hits {
		md := h.Metadata
		if md == nil {
			md = map[string]any{}
		}
		out[i] = searchHit{ID: h.ID, Content: h.Text, Name: h.Document, ContentID: h.DocumentID, KnowledgeID: h.KnowledgeID,
			ChunkIndex: h.Index, Page: h.Page, Heading: h.Heading, Score: h.Score, MetaData: md}
	}
	c.JSON(http.StatusOK, searchResponse{Data: out, Meta: searchMeta{pageMeta: pageMeta{Page: 1, Limit: limit, TotalPages: 1, TotalCount: len(out)},
		SearchTimeMS: float64(time.Since(start).Microseconds()) / 1000}})
	return nil
}
