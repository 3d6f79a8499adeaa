package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// runRequest is the body of POST /agents/{id}/runs, as JSON or as a form.
type runRequest struct {
	Message   string `json:"message" form:"message" openapi:"required"`
	Stream    *bool  `json:"stream" form:"stream"`
	SessionID string `json:"session_id" form:"session_id"`
	UserID    string `json:"user_id" form:"user_id"`
}

func parseRunRequest(c *gin.Context) (runRequest, error) {
	var req runRequest
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch ct {
	case "application/json":
		if err := json.NewDecoder(c.Request.Body).Decode(&req); err != nil {
			return req, bodyError(err)
		}
	case "multipart/form-data", "application/x-www-form-urlencoded", "":
		if ct == "multipart/form-data" {
			if err := c.Request.ParseMultipartForm(1 << 20); err != nil {
				return req, bodyError(err)
			}
		}
		req.Message = c.PostForm("message")
		req.SessionID = c.PostForm("session_id")
		req.UserID = c.PostForm("user_id")
		if v, ok := c.GetPostForm("stream"); ok && v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return req, &httpError{http.StatusUnprocessableEntity, fmt.Sprintf("stream must be true or false, got %q", v)}
			}
			req.Stream = &b
		}
	default:
		return req, &httpError{http.StatusUnsupportedMediaType, "send the run as application/json or a form (multipart/form-data or urlencoded)"}
	}
	if strings.TrimSpace(req.Message) == "" {
		return req, &httpError{http.StatusUnprocessableEntity, "message is required"}
	}
	return req, nil
}

// bodyError maps body decoding failures to a status: too large or malformed.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
	}
	return &httpError{http.StatusBadRequest, "malformed request body: " + err.Error()}
}

// respondError writes err as JSON with its status (500 for unexpected errors,
// whose details go to the log, not the client).
func (s *Server) respondError(c *gin.Context, err error) {
	var he *httpError
	if errors.As(err, &he) {
		abort(c, he.status, he.msg)
		return
	}
	s.log.Error("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	abort(c, http.StatusInternalServerError, "internal error; see the server log")
}

func kindOf(typ string) spec.Kind {
	if typ == "team" {
		return spec.KindTeam
	}
	return spec.KindAgent
}

// createRun answers POST /agents/{id}/runs and POST /teams/{id}/runs.
func (s *Server) createRun(typ string) gin.HandlerFunc {
	return func(c *gin.Context) {
		req, err := parseRunRequest(c)
		if err != nil {
			s.respondError(c, err)
			return
		}
		stream := req.Stream == nil || *req.Stream
		p := session.Params{Kind: kindOf(typ), Name: c.Param("id"), Message: req.Message, SessionID: req.SessionID,
			UserID: auth.Of(c).UserID(req.UserID), Stream: stream, BoundUser: auth.Of(c).Bound(), Link: runLink(c)}
		turn, err := s.opts.Runs.Start(c.Request.Context(), p)
		if err != nil {
			s.respondError(c, runError(err))
			return
		}
		c.Header("X-Run-Id", turn.RunID())
		c.Header("X-Session-Id", turn.SessionID())
		traceHeaders(c, turn)
		if !stream {
			run := turn.Execute(c.Request.Context(), func(event.Event) {})
			c.JSON(http.StatusOK, toRun(run, false))
			return
		}
		w, closed := s.streams.Open(c.Writer)
		defer closed()
		turn.Execute(c.Request.Context(), func(e event.Event) {
			if e.Type == event.ModelRequestCompleted {
				return // internal accounting; AgentOS clients do not expect it
			}
			frame := toSSE(e)
			_ = w.Event(frame.Event, frame)
		})
	}
}

func (s *Server) cancelRun(typ string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !s.opts.Runs.Cancel(c.Param("run_id"), match(auth.Of(c), session.Match{Kind: kindOf(typ), Name: c.Param("id")})) {
			abort(c, http.StatusNotFound, fmt.Sprintf("no run %s of %s %s is in progress", c.Param("run_id"), typ, c.Param("id")))
			return
		}
		c.JSON(http.StatusOK, cancelResponse{RunID: c.Param("run_id"), Status: "cancelling"})
	}
}
