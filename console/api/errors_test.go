package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// TestStatusTable checks the one table from domain errors to statuses and
// client messages, wrapped as handlers return them.
func TestStatusTable(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("loading: %w", err) }
	tests := []struct {
		name   string
		err    error
		status int
		msg    string
		known  bool
	}{
		{"api error", api.Errorf(http.StatusUnprocessableEntity, "limit must be %d", 1), 422, "limit must be 1", true},
		{"wrapped api error", wrap(&api.Error{Status: http.StatusConflict, Msg: "busy"}), 409, "busy", true},
		{"auth refusal", &auth.Error{Status: http.StatusForbidden, Msg: "this API key lacks the admin scope"}, 403, "this API key lacks the admin scope", true},
		{"invalid run", &session.Error{Kind: session.ErrInvalid, Msg: "bad id"}, 422, "bad id", true},
		{"broken target", &session.Error{Kind: session.ErrBroken, Msg: "agent x is broken"}, 409, "agent x is broken", true},
		{"missing target", &session.Error{Kind: session.ErrNotFound, Msg: `agent "x" not found`}, 404, `agent "x" not found`, true},
		{"missing session", &session.Error{Kind: session.ErrSessionNotFound, Msg: `session "s" not found`}, 404, `session "s" not found`, true},
		{"other refusal", &session.Error{Kind: session.ErrShutdown, Msg: "shutting down"}, 500, "shutting down", true},
		{"store not found", wrap(store.ErrNotFound), 404, "resource not found", true},
		{"document not found", wrap(knowledge.ErrNotFound), 404, "loading: not found", true},
		{"too large", kb.ErrTooLarge, 413, kb.ErrTooLarge.Error(), true},
		{"unsupported", kb.ErrUnsupported, 415, kb.ErrUnsupported.Error(), true},
		{"bad filter", knowledge.ErrInvalidFilter, 422, knowledge.ErrInvalidFilter.Error(), true},
		{"bad document", kb.ErrInvalid, 422, kb.ErrInvalid.Error(), true},
		{"trace store down", wrap(telemetry.ErrUnavailable), 503,
			"the trace store cannot be reached right now; spans are dropped until it is back (see troupe_trace_spans_dropped_total): loading: " + telemetry.ErrUnavailable.Error(), true},
		{"too large body", api.BodyError(&http.MaxBytesError{Limit: 10}), 413, "request body is larger than 10 bytes", true},
		{"malformed body", api.BodyError(errors.New("unexpected EOF")), 400, "malformed request body: unexpected EOF", true},
		{"deadline", wrap(context.DeadlineExceeded), 500, "internal error; see the server log", false},
		{"unknown", errors.New("disk on fire"), 500, "internal error; see the server log", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, msg, known := api.Status(tt.err)
			require.Equal(t, tt.status, status)
			require.Equal(t, tt.msg, msg)
			require.Equal(t, tt.known, known)
		})
	}
}
