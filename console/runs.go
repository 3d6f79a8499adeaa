package console

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/telemetry"
)

// Runs are started, cancelled and drained by the run service
// (engine/session); the handlers only translate requests into its Params and
// its events and refusals into responses.

// httpError is an error with the status code it should be answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// runError maps a refusal of the run service to the status it is answered
// with, keeping its message; other errors pass through (500).
func runError(err error) error {
	var se *session.Error
	if !errors.As(err, &se) {
		return err
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, session.ErrInvalid):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, session.ErrBroken):
		status = http.StatusConflict
	case errors.Is(err, session.ErrNotFound):
		status = http.StatusNotFound
	}
	return &httpError{status, se.Msg}
}

// runLink is the caller's span from its traceparent header: the run's own
// trace links to it (see telemetry.NewTrace) and never joins it.
func runLink(c *gin.Context) session.Link {
	p := traceLink(c)
	return session.Link{TraceID: p.TraceID, SpanID: p.SpanID}
}

// traceHeaders names the run's trace to the client, when it is traced.
func traceHeaders(c *gin.Context, t *session.Turn) {
	if traceID, spanID := t.TraceContext(); traceID != "" {
		c.Header("Traceparent", telemetry.Traceparent(traceID, spanID))
		c.Header("X-Trace-Id", traceID)
	}
}

// match restricts a cancel request to what p may cancel.
func match(p auth.Principal, m session.Match) session.Match {
	m.UserID = p.UserID("")
	return m
}
