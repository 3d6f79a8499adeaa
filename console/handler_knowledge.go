package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

// Knowledge is what the server needs from the knowledge service.
type Knowledge interface {
	Bases() []*spec.Knowledge
	Submit(ctx context.Context, u kb.Upload) (*kb.Document, bool, error)
	FetchURL(ctx context.Context, url string) ([]byte, string, error)
	Get(ctx context.Context, id string) (*kb.Document, error)
	List(ctx context.Context, q kb.DocumentQuery) ([]kb.Document, int, error)
	Patch(ctx context.Context, id string, name, description *string, metadata map[string]any) (*kb.Document, error)
	Delete(ctx context.Context, id string) error
	Retry(ctx context.Context, id string) (*kb.Document, error)
	Search(ctx context.Context, knowledgeIDs []string, query, mode string, topK int, filters knowledge.Filters) ([]knowledge.Hit, error)
	MaxBytes() int64
	Config() kb.Config
}

type contentResponse struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Description   string         `json:"description"`
	Type          string         `json:"type"`
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

func toContent(d *kb.Document) contentResponse {
	md := d.Metadata
	if md == nil {
		md = map[string]any{}
	}
	return contentResponse{ID: d.ID, Name: d.Name, Description: d.Description, Type: d.Type, Size: strconv.FormatInt(d.Size, 10),
		KnowledgeID: d.KnowledgeID, LinkedTo: d.KnowledgeID, Source: d.Source, Metadata: md, Status: d.Status, StatusMessage: d.Message,
		Progress: d.Progress, Chunks: d.Chunks, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
}

func (s *Server) knowledgeError(c *gin.Context, err error) {
	if status, msg, ok := knowledgeStatus(err); ok {
		abort(c, status, msg)
		return
	}
	s.respondError(c, err)
}

// knowledgeStatus maps the knowledge service's errors (and *httpError) to a
// status and a message for the client; ok is false for unexpected errors.
func knowledgeStatus(err error) (status int, msg string, ok bool) {
	var he *httpError
	switch {
	case errors.Is(err, kb.ErrNotFound):
		return http.StatusNotFound, err.Error(), true
	case errors.Is(err, kb.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error(), true
	case errors.Is(err, kb.ErrUnsupported):
		return http.StatusUnsupportedMediaType, err.Error(), true
	case errors.Is(err, knowledge.ErrInvalidFilter), errors.Is(err, kb.ErrInvalid):
		return http.StatusUnprocessableEntity, err.Error(), true
	case errors.As(err, &he):
		return he.status, he.msg, true
	}
	return 0, "", false
}

// knowledgeID picks the knowledge base of a request: the knowledge_id query
// parameter or form field, or the only configured base.
func (s *Server) knowledgeID(c *gin.Context) (string, error) {
	id := c.Query("knowledge_id")
	if id == "" {
		id = c.PostForm("knowledge_id")
	}
	if id != "" {
		return id, nil
	}
	bases := s.opts.Knowledge.Bases()
	if len(bases) == 1 {
		return bases[0].Name, nil
	}
	names := make([]string, len(bases))
	for i, b := range bases {
		names[i] = b.Name
	}
	return "", &httpError{http.StatusUnprocessableEntity, "knowledge_id is required; knowledge bases: " + strings.Join(names, ", ")}
}

// uploadContent answers POST /knowledge/content: multipart with a file, a url
// or text_content, plus name, description, metadata (JSON) and chunking
// overrides. It returns 202 with the document's id and status.
func (s *Server) uploadContent(c *gin.Context) {
	d, err := s.submitUpload(c)
	if err != nil {
		s.knowledgeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, toContent(d))
}

// submitUpload reads an upload form and queues the document for ingestion;
// the API and the console's upload both use it. Errors are *httpError or
// the knowledge service's.
func (s *Server) submitUpload(c *gin.Context) (*kb.Document, error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.Knowledge.MaxBytes()+1<<20)
	if err := c.Request.ParseMultipartForm(8 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("upload is larger than the %d byte limit", s.opts.Knowledge.MaxBytes())}
		}
		return nil, &httpError{http.StatusBadRequest, "malformed upload: " + err.Error()}
	}
	kbID, err := s.knowledgeID(c)
	if err != nil {
		return nil, err
	}
	u := kb.Upload{KnowledgeID: kbID, Name: c.PostForm("name"), Description: c.PostForm("description"), ChunkStrategy: c.PostForm("chunk_strategy")}
	if md := c.PostForm("metadata"); md != "" {
		if err := json.Unmarshal([]byte(md), &u.Metadata); err != nil {
			return nil, &httpError{http.StatusUnprocessableEntity, "metadata must be a JSON object: " + err.Error()}
		}
	}
	for _, f := range []struct {
		name string
		into *int
	}{{"chunk_size", &u.ChunkSize}, {"chunk_overlap", &u.ChunkOverlap}} {
		if v := c.PostForm(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, &httpError{http.StatusUnprocessableEntity, f.name + " must be a non-negative whole number"}
			}
			*f.into = n
		}
	}
	switch fh, ferr := c.FormFile("file"); {
	case ferr == nil:
		f, err := fh.Open()
		if err != nil {
			return nil, &httpError{http.StatusBadRequest, "reading the uploaded file: " + err.Error()}
		}
		u.Content, err = io.ReadAll(io.LimitReader(f, s.opts.Knowledge.MaxBytes()+1))
		f.Close()
		if err != nil {
			return nil, &httpError{http.StatusBadRequest, "reading the uploaded file: " + err.Error()}
		}
		if u.Name == "" {
			u.Name = fh.Filename
		}
	case c.PostForm("url") != "":
		url := c.PostForm("url")
		data, name, err := s.opts.Knowledge.FetchURL(c.Request.Context(), url)
		if err != nil {
			if errors.Is(err, kb.ErrTooLarge) {
				return nil, err
			}
			return nil, &httpError{http.StatusUnprocessableEntity, err.Error()}
		}
		u.Content, u.Source = data, "url:"+url
		if u.Name == "" {
			u.Name = name
		}
	case c.PostForm("text_content") != "":
		u.Content, u.Source = []byte(c.PostForm("text_content")), "text"
		if u.Name == "" {
			u.Name = "text.txt"
		}
	default:
		return nil, &httpError{http.StatusUnprocessableEntity, "send a file, a url or text_content"}
	}
	d, _, err := s.opts.Knowledge.Submit(c.Request.Context(), u)
	return d, err
}

func (s *Server) listContent(c *gin.Context) {
	q := kb.DocumentQuery{KnowledgeID: c.Query("knowledge_id"), Status: c.Query("status"), SortBy: c.Query("sort_by"), SortOrder: c.Query("sort_order")}
	switch q.SortBy {
	case "", "created_at", "updated_at", "name", "size":
	default:
		abort(c, http.StatusUnprocessableEntity, "sort_by must be created_at, updated_at, name or size")
		return
	}
	if q.SortOrder != "" && q.SortOrder != "asc" && q.SortOrder != "desc" {
		abort(c, http.StatusUnprocessableEntity, "sort_order must be asc or desc")
		return
	}
	var err error
	if q.Limit, q.Page, err = paging(c); err != nil {
		s.respondError(c, err)
		return
	}
	docs, total, err := s.opts.Knowledge.List(c.Request.Context(), q)
	if err != nil {
		s.knowledgeError(c, err)
		return
	}
	out := paged[contentResponse]{Data: make([]contentResponse, len(docs)), Meta: newPageMeta(q.Page, q.Limit, total)}
	for i := range docs {
		out.Data[i] = toContent(&docs[i])
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getContent(c *gin.Context) {
	d, err := s.opts.Knowledge.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.knowledgeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toContent(d))
}

func (s *Server) contentStatus(c *gin.Context) {
	d, err := s.opts.Knowledge.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.knowledgeError(c, err)
		return
	}
	c.JSON(http.StatusOK, contentStatusResponse{ID: d.ID, Status: d.Status, StatusMessage: d.Message, Progress: d.Progress, Chunks: d.Chunks})
}

func (s *Server) patchContent(c *gin.Context) {
	var body patchContentRequest
	if strings.HasPrefix(c.GetHeader("Content-Type"), "application/json") {
		if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil {
			s.respondError(c, bodyError(err))
			return
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
				abort(c, http.StatusUnprocessableEntity, "metadata must be a JSON object")
				return
			}
		}
	}
	d, err := s.opts.Knowledge.Patch(c.Request.Context(), c.Param("id"), body.Name, body.Description, body.Metadata)
	if err != nil {
		s.knowledgeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toContent(d))
}

func (s *Server) deleteContent(c *gin.Context) {
	if err := s.opts.Knowledge.Delete(c.Request.Context(), c.Param("id")); err != nil {
		s.knowledgeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) retryContent(c *gin.Context) {
	d, err := s.opts.Knowledge.Retry(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.knowledgeError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, toContent(d))
}

func (s *Server) knowledgeConfig(c *gin.Context) {
	cfg := s.opts.Knowledge.Config()
	var bases []gin.H
	for _, b := range s.opts.Knowledge.Bases() {
		bases = append(bases, gin.H{"id": b.Name, "name": b.Name, "description": b.Description, "store": b.Store.Type,
			"embedder": b.Embedder, "search_mode": b.Search.Mode, "top_k": b.Search.TopK, "chunking": b.Chunking})
	}
	c.JSON(http.StatusOK, gin.H{"readers": cfg.Readers, "chunkers": cfg.Chunkers, "vector_dbs": cfg.Stores, "embedders": cfg.Embedders,
		"max_upload_bytes": cfg.MaxBytes, "knowledge_bases": bases})
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

// searchIDs are the knowledge bases a search covers: the one named, or
// every configured base.
func (s *Server) searchIDs(id string) []string {
	if id != "" {
		return []string{id}
	}
	var ids []string
	for _, b := range s.opts.Knowledge.Bases() {
		ids = append(ids, b.Name)
	}
	return ids
}

func (s *Server) searchKnowledge(c *gin.Context) {
	var body searchRequest
	if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil {
		s.respondError(c, bodyError(err))
		return
	}
	if strings.TrimSpace(body.Query) == "" {
		abort(c, http.StatusUnprocessableEntity, "query is required")
		return
	}
	switch body.SearchType {
	case "", knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid:
	default:
		abort(c, http.StatusUnprocessableEntity, "search_type must be vector, keyword or hybrid")
		return
	}
	if body.MaxResults < 0 || body.MaxResults > 100 {
		abort(c, http.StatusUnprocessableEntity, "max_results must be from 1 to 100")
		return
	}
	start := time.Now()
	hits, err := s.opts.Knowledge.Search(c.Request.Context(), s.searchIDs(body.KnowledgeID), body.Query, body.SearchType, body.MaxResults, body.Filters)
	if err != nil {
		s.knowledgeError(c, err)
		return
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
	c.JSON(http.StatusOK, searchResponse{Data: out, Meta: searchMeta{pageMeta: pageMeta{Page: 1, Limit: len(out), TotalPages: 1, TotalCount: len(out)},
		SearchTimeMS: float64(time.Since(start).Microseconds()) / 1000}})
}
