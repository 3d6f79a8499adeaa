package editor

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
)

// Register mounts the editor's JSON routes on r, relative to it: the API
// mounts them under /config, the console under /ui/editor, each behind its
// own authentication and an admin scope check. Errors are JSON
// {"detail": "..."}; a conflict adds what is on disk now.
//
//	GET    files              the files, and the templates
//	GET    files/*path        a file's content and hash
//	PUT    files/*path        save {content, base_hash}
//	DELETE files/*path        delete (?base_hash=)
//	POST   check              check {path, content}
//	POST   rename             rename {from, to, base_hash}
//	GET    templates/:kind    a new file (?name=)
//	GET    audit              the writes, newest first (?limit=)
func (s *Service) Register(r gin.IRouter) {
	r.GET("/files", s.wrap(s.listFiles))
	r.GET("/files/*path", s.wrap(s.getFile))
	r.PUT("/files/*path", s.wrap(s.putFile))
	r.DELETE("/files/*path", s.wrap(s.deleteFile))
	r.POST("/check", s.wrap(s.check))
	r.POST("/rename", s.wrap(s.rename))
	r.GET("/templates/:kind", s.wrap(s.template))
	r.GET("/audit", s.wrap(s.listAudit))
}

func (s *Service) wrap(f func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := f(c); err != nil {
			s.fail(c, err)
		}
	}
}

// detail is an error answer.
type detail struct {
	Detail string `json:"detail"`
}

func (s *Service) fail(c *gin.Context, err error) {
	if e, ok := errors.AsType[*Error](err); ok {
		if e.Conflict != nil {
			c.AbortWithStatusJSON(e.Status, e.Conflict)
			return
		}
		c.AbortWithStatusJSON(e.Status, detail{Detail: e.Msg})
		return
	}
	s.log.Error("editor request failed", "err", err, "method", c.Request.Method, "path", c.Request.URL.Path)
	c.AbortWithStatusJSON(http.StatusInternalServerError, detail{Detail: "the server could not complete this: " + err.Error()})
}

// actor is who makes a request.
func actor(c *gin.Context) Actor {
	p := auth.Of(c)
	if k := p.Key(); k != nil {
		return Actor{Name: k.Name, UserID: k.UserID}
	}
	return Actor{Name: "open"}
}

// pathParam is a catch-all parameter without gin's leading slash.
func pathParam(c *gin.Context) string { return strings.TrimPrefix(c.Param("path"), "/") }

// FileList is GET files.
type FileList struct {
	Files     []FileInfo `json:"files"`
	Templates []Template `json:"templates"`
}

func (s *Service) listFiles(c *gin.Context) error {
	files, err := s.Files()
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, FileList{Files: files, Templates: Templates})
	return nil
}

func (s *Service) getFile(c *gin.Context) error {
	f, err := s.Read(pathParam(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, f)
	return nil
}

// SaveRequest is PUT files/*path.
type SaveRequest struct {
	Content string `json:"content"`
	// BaseHash is the hash of the content the editor opened; empty to
	// create a file that must not exist.
	BaseHash string `json:"base_hash"`
}

func (s *Service) putFile(c *gin.Context) error {
	var req SaveRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		return badBody(err)
	}
	out, err := s.Save(c.Request.Context(), actor(c), pathParam(c), []byte(req.Content), req.BaseHash)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (s *Service) deleteFile(c *gin.Context) error {
	out, err := s.Delete(c.Request.Context(), actor(c), pathParam(c), c.Query("base_hash"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// CheckRequest is POST check.
type CheckRequest struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// CheckResponse is POST check's answer.
type CheckResponse struct {
	Diagnostics []Diagnostic `json:"diagnostics"`
}

func (s *Service) check(c *gin.Context) error {
	var req CheckRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		return badBody(err)
	}
	ds, err := s.Check(req.Path, []byte(req.Content))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, CheckResponse{Diagnostics: ds})
	return nil
}

// RenameRequest is POST rename.
type RenameRequest struct {
	From     string `json:"from"`
	To       string `json:"to"`
	BaseHash string `json:"base_hash"`
}

func (s *Service) rename(c *gin.Context) error {
	var req RenameRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		return badBody(err)
	}
	out, err := s.Rename(c.Request.Context(), actor(c), req.From, req.To, req.BaseHash)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (s *Service) template(c *gin.Context) error {
	out, err := s.Template(c.Param("kind"), c.Query("name"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// AuditList is GET audit.
type AuditList struct {
	Data []AuditEntry `json:"data"`
}

// maxAudit bounds a page of the audit.
const maxAudit = 500

func (s *Service) listAudit(c *gin.Context) error {
	limit := 50
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxAudit {
			return &Error{Status: http.StatusBadRequest, Msg: "limit must be a number from 1 to " + strconv.Itoa(maxAudit)}
		}
		limit = n
	}
	rows, err := s.Audits(c.Request.Context(), limit)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, AuditList{Data: rows})
	return nil
}

func badBody(err error) error {
	return &Error{Status: http.StatusBadRequest, Msg: "the body must be JSON of the documented shape: " + err.Error()}
}
