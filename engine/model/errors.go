package model

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrorKind classifies a failed model call, so retries and messages do not
// depend on vendor wire details.
type ErrorKind string

// Error kinds.
const (
	ErrAuth          ErrorKind = "auth"           // bad or missing API key: not retried
	ErrRateLimit     ErrorKind = "rate_limit"     // 429: retried after Retry-After
	ErrOverloaded    ErrorKind = "overloaded"     // 5xx, 529: retried with backoff
	ErrTimeout       ErrorKind = "timeout"        // the request took too long: retried
	ErrContextLength ErrorKind = "context_length" // the prompt is too long: not retried
	ErrBadRequest    ErrorKind = "bad_request"    // 4xx other than the above: not retried
	ErrNetwork       ErrorKind = "network"        // connection failed: retried
	ErrProtocol      ErrorKind = "protocol"       // the vendor answered something unparseable
)

// Error is a classified model error. Message is safe to show users: it never
// contains API keys or request headers.
type Error struct {
	Kind       ErrorKind
	Provider   string
	StatusCode int           // HTTP status, 0 if none
	RetryAfter time.Duration // from Retry-After, 0 if none
	Message    string
	Err        error // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	fmt.Fprintf(&b, ": %s", e.Kind)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether err is worth retrying: rate limits, overload,
// timeouts and network failures. Cancellation never is.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var me *Error
	if errors.As(err, &me) {
		switch me.Kind {
		case ErrRateLimit, ErrOverloaded, ErrTimeout, ErrNetwork:
			return true
		}
		return false
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// KindOf returns the kind of a model error, or "" for other errors.
func KindOf(err error) ErrorKind {
	var me *Error
	if errors.As(err, &me) {
		return me.Kind
	}
	return ""
}

// HTTPError classifies a non-2xx HTTP response. message is the vendor's error
// message, already extracted from the body by the adapter (may be empty).
func HTTPError(provider string, resp *http.Response, message string) *Error {
	e := &Error{Provider: provider, StatusCode: resp.StatusCode, Message: message}
	e.RetryAfter = ParseRetryAfter(resp.Header, time.Now())
	lower := strings.ToLower(message)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.Kind = ErrAuth
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Kind = ErrRateLimit
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusGatewayTimeout:
		e.Kind = ErrTimeout
	case resp.StatusCode >= 500 || resp.StatusCode == 529:
		e.Kind = ErrOverloaded
	case IsContextLengthMessage(lower):
		e.Kind = ErrContextLength
	default:
		e.Kind = ErrBadRequest
	}
	return e
}

// IsContextLengthMessage recognizes vendors' "prompt too long" errors.
func IsContextLengthMessage(lower string) bool {
	for _, s := range []string{"context_length", "context length", "maximum context", "too many tokens", "prompt is too long", "context window"} {
		if strings.Contains(lower, s) {
			return true
		}
	}
	return false
}

// TransportError classifies an error from sending the request or reading the
// response body. Cancellation of ctx is returned as ctx's error, unclassified,
// so callers can tell "the user cancelled" from "the vendor failed".
func TransportError(ctx context.Context, provider string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return &Error{Kind: ErrTimeout, Provider: provider, Message: "request timed out", Err: ctxErr}
		}
		return ctxErr
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: ErrTimeout, Provider: provider, Message: "request timed out", Err: err}
	}
	return &Error{Kind: ErrNetwork, Provider: provider, Message: "connection failed", Err: err}
}

// ParseRetryAfter reads Retry-After (seconds or an HTTP date), plus the
// retry-after-ms header some vendors send. It returns 0 when absent.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if ms := h.Get("Retry-After-Ms"); ms != "" {
		if v, err := strconv.ParseFloat(ms, 64); err == nil && v > 0 {
			return time.Duration(v * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
