package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/store"
)

// FileRecords reads the metadata of the files sent with runs (the store).
type FileRecords interface {
	SessionFiles(ctx context.Context, id string, f store.Filter) ([]store.RunFile, error)
	GetRunFile(ctx context.Context, sessionID, fileID string, f store.Filter) (*store.RunFile, error)
}

// fileResponse describes a file sent with a run.
type fileResponse struct {
	ID        string `json:"id"`
	RunID     string `json:"run_id"`
	Name      string `json:"name"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	// URL downloads it (GET, the same keys as the session).
	URL       string `json:"url"`
	CreatedAt int64  `json:"created_at"`
}

// FileURL is the download route of file id of session sessionID.
func FileURL(sessionID, id string) string {
	return "/sessions/" + sessionID + "/files/" + id
}

// FormUploads reads the files of a multipart run form (AgentOS's files
// field), each bounded by limits: a file over its limit is refused before
// it is read whole.
func FormUploads(form *multipart.Form, limits files.Limits) ([]files.Upload, error) {
	if form == nil {
		return nil, nil
	}
	headers := form.File["files"]
	max := limits.MaxFileBytes
	if max <= 0 {
		max = files.DefaultMaxFileBytes
	}
	out := make([]files.Upload, 0, len(headers))
	for _, fh := range headers {
		if fh.Size > max {
			return nil, fmt.Errorf("%w: %q has %d bytes, the limit is %d bytes per file; send a smaller file", files.ErrTooLarge, fh.Filename, fh.Size, max)
		}
		f, err := fh.Open()
		if err != nil {
			return nil, BodyError(err)
		}
		data, err := io.ReadAll(io.LimitReader(f, max+1))
		_ = f.Close()
		if err != nil {
			return nil, BodyError(err)
		}
		out = append(out, files.Upload{Name: fh.Filename, Data: data})
	}
	return out, nil
}

// listSessionFiles answers GET /sessions/{id}/files: the files sent with
// the session's runs, oldest first, to its user (or an administrator).
func (h *Handler) listSessionFiles(c *gin.Context) error {
	if h.opts.Files == nil {
		return Errorf(http.StatusNotFound, "this server keeps no run files")
	}
	f := filter(c)
	if _, err := h.opts.Store.GetSession(c.Request.Context(), c.Param("id"), f); err != nil {
		return about("session", err)
	}
	rows, err := h.opts.Store.SessionFiles(c.Request.Context(), c.Param("id"), f)
	if err != nil {
		return err
	}
	out := make([]fileResponse, len(rows))
	for i, r := range rows {
		out[i] = fileResponse{ID: r.ID, RunID: r.RunID, Name: r.Name, MediaType: r.MediaType, Size: r.Size, SHA256: r.SHA256,
			URL: FileURL(r.SessionID, r.ID), CreatedAt: r.CreatedAt.Unix()}
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// downloadFile answers GET /sessions/{id}/files/{file_id}: the file's bytes
// to the session's user (or an administrator); anyone else gets 404, as
// for a file that does not exist.
func (h *Handler) downloadFile(c *gin.Context) error {
	if h.opts.Files == nil {
		return Errorf(http.StatusNotFound, "this server keeps no run files")
	}
	rf, err := h.opts.Store.GetRunFile(c.Request.Context(), c.Param("id"), c.Param("file_id"), filter(c))
	if err != nil {
		return about("file", err)
	}
	return ServeFile(c, h.opts.Files, rf)
}

// ServeFile writes rf's bytes from fs as a download (images inline, so
// pages can show them), for the API and the console alike.
func ServeFile(c *gin.Context, fs files.Store, rf *store.RunFile) error {
	body, err := fs.Get(c.Request.Context(), rf.Key)
	if errors.Is(err, files.ErrNotFound) {
		return Errorf(http.StatusNotFound, "the bytes of file %s are gone from the file store", rf.ID)
	}
	if err != nil {
		return err
	}
	defer body.Close()
	disposition := "attachment"
	if files.IsImage(rf.MediaType) {
		disposition = "inline"
	}
	h := c.Writer.Header()
	h.Set("Content-Type", rf.MediaType)
	h.Set("Content-Length", strconv.FormatInt(rf.Size, 10))
	h.Set("Content-Disposition", mimeDisposition(disposition, rf.Name))
	// The bytes never change under an id; the page that shows them may
	// cache them, nobody else.
	h.Set("Cache-Control", "private, max-age=86400")
	h.Set("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)
	_, _ = io.Copy(c.Writer, body) // the client may leave; nothing to tell it then
	return nil
}

func mimeDisposition(kind, name string) string {
	return mime.FormatMediaType(kind, map[string]string{"filename": name})
}
