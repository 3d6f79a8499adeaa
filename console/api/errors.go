package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine/files"
	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/telemetry"
)

// Error is an error with the status it is answered with and the message the
// client sees: a request the API refuses for what it says.
type Error struct {
	Status int
	Msg    string
	// Diagnostics go with the 404 for an agent or team whose spec is
	// broken, saying what to fix.
	Diagnostics []diagnosticJSON
}

func (e *Error) Error() string { return e.Msg }

// StatusCode is the HTTP status e is answered with.
func (e *Error) StatusCode() int { return e.Status }

// Errorf returns an *Error with status and a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// statusCoder is an error that carries its own status: *Error, and the
// refusals of console/auth.
type statusCoder interface {
	error
	StatusCode() int
}

// notFound names what a store.ErrNotFound was about ("session"), for the
// client's message.
type notFound struct {
	what string
	err  error
}

func (e *notFound) Error() string { return e.what + ": " + e.err.Error() }
func (e *notFound) Unwrap() error { return e.err }

// about wraps a store error with what it was about; nil stays nil.
func about(what string, err error) error {
	if err == nil {
		return nil
	}
	return &notFound{what: what, err: err}
}

// unavailableTraces is the message for a trace store that cannot be
// reached: clients should retry.
const unavailableTraces = "the trace store cannot be reached right now; spans are dropped until it is back (see troupe_trace_spans_dropped_total): "

// Status is the API's one table from errors to status codes: it returns the
// status an error is answered with and the message the client sees. ok is
// false for an error the table does not know, a failure of the server's own
// (answered 500, with its details in the log, never to the client). The
// console's pages and the OpenAI surface classify errors with it too.
func Status(err error) (status int, msg string, ok bool) {
	var (
		sc statusCoder
		se *session.Error
		nf *notFound
	)
	if status, msg, ok := triggerStatus(err); ok {
		return status, msg, true
	}
	switch {
	case errors.As(err, &sc):
		return sc.StatusCode(), sc.Error(), true
	case errors.As(err, &se):
		// A refusal of the run service, with the message it wrote.
		switch {
		case errors.Is(err, session.ErrInvalid):
			return http.StatusUnprocessableEntity, se.Msg, true
		case errors.Is(err, session.ErrBroken), errors.Is(err, session.ErrConflict):
			return http.StatusConflict, se.Msg, true
		case errors.Is(err, session.ErrForbidden):
			return http.StatusForbidden, se.Msg, true
		case errors.Is(err, session.ErrNotFound):
			return http.StatusNotFound, se.Msg, true
		case errors.Is(err, session.ErrBusy):
			return http.StatusTooManyRequests, se.Msg, true
		}
		return http.StatusInternalServerError, se.Msg, true
	case errors.Is(err, session.ErrNotFound):
		// The store's, which is the run service's: a session or run the
		// caller does not see.
		what := "resource"
		if errors.As(err, &nf) {
			what = nf.what
		}
		return http.StatusNotFound, what + " not found", true
	case errors.Is(err, knowledge.ErrNotFound):
		return http.StatusNotFound, err.Error(), true
	case errors.Is(err, memory.ErrNotFound):
		// The same answer for a memory of another user as for none.
		return http.StatusNotFound, "memory not found", true
	case errors.Is(err, memory.ErrInvalid):
		return http.StatusUnprocessableEntity, err.Error(), true
	case errors.Is(err, files.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error(), true
	case errors.Is(err, files.ErrUnsupported):
		return http.StatusUnsupportedMediaType, err.Error(), true
	case errors.Is(err, files.ErrUnreadable):
		return http.StatusUnprocessableEntity, err.Error(), true
	case errors.Is(err, kb.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error(), true
	case errors.Is(err, kb.ErrUnsupported):
		return http.StatusUnsupportedMediaType, err.Error(), true
	case errors.Is(err, knowledge.ErrInvalidFilter), errors.Is(err, kb.ErrInvalid), errors.Is(err, kb.ErrInvalidSearch):
		return http.StatusUnprocessableEntity, err.Error(), true
	case errors.Is(err, jobs.ErrNotFound):
		return http.StatusNotFound, "job not found: it never existed, or it finished long enough ago that the job engine deleted it", true
	case errors.Is(err, jobs.ErrRunning):
		return http.StatusConflict, "the job is running; requeue it once it has finished", true
	case errors.Is(err, jobs.ErrInvalid):
		return http.StatusUnprocessableEntity, err.Error(), true
	case errors.Is(err, telemetry.ErrUnavailable):
		return http.StatusServiceUnavailable, unavailableTraces + err.Error(), true
	}
	return http.StatusInternalServerError, "internal error; see the server log", false
}

// Fail answers err as the API's JSON error, with the status Status gives
// it. Errors the table does not know are logged, not shown.
func (h *Handler) Fail(c *gin.Context, err error) {
	status, msg, ok := Status(err)
	if !ok {
		h.log.Error("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	}
	var se *session.Error
	if errors.As(err, &se) && se.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(se.RetryAfter.Seconds()))))
	}
	var e *Error
	if errors.As(err, &e) && e.Diagnostics != nil {
		c.AbortWithStatusJSON(status, brokenBody{Detail: msg, Diagnostics: e.Diagnostics})
		return
	}
	c.AbortWithStatusJSON(status, errorBody{Detail: msg})
}

// brokenBody answers for an agent or team whose spec is broken.
type brokenBody struct {
	Detail      string           `json:"detail"`
	Diagnostics []diagnosticJSON `json:"diagnostics"`
}

// BodyError maps a failure to read or decode a request body to the error
// it is answered with: too large (413) or malformed (400).
func BodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return Errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", tooBig.Limit)
	}
	return &Error{Status: http.StatusBadRequest, Msg: "malformed request body: " + err.Error()}
}
