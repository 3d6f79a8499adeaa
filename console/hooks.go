package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/ui"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/trigger"
)

// Triggers fires Trigger documents (trigger.Service).
type Triggers interface {
	// RunNow fires trigger name at once (the API's and the console's "run
	// now").
	RunNow(ctx context.Context, name string) (*session.Run, error)
	// Webhook starts a run of the trigger whose webhook path is path when
	// body's signature in header is right.
	Webhook(ctx context.Context, path string, header http.Header, body []byte) (*session.Run, error)
}

var _ Triggers = (*trigger.Service)(nil)

// triggersOf hands t to the API and the console, keeping a nil interface
// nil (they leave "run now" out then).
func triggersOf(t Triggers) interface {
	api.Triggers
	ui.Triggers
} {
	if t == nil {
		return nil
	}
	return t
}

// webhookAccepted answers a webhook call that started a run.
type webhookAccepted struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	Trigger   string `json:"trigger"`
	Status    string `json:"status"`
}

// hook answers POST /hooks/{path}. It is outside the API keys' scopes: the
// body's HMAC signature is the caller's authentication (GitHub and most
// senders cannot send an API key), checked by the trigger service. It still
// goes through the Host check and the body limits.
func (s *Server) hook(c *gin.Context) {
	path := strings.TrimPrefix(c.Param("path"), "/")
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.api.Fail(c, &api.Error{Status: http.StatusRequestEntityTooLarge, Msg: "the webhook body is too large"})
			return
		}
		s.api.Fail(c, &api.Error{Status: http.StatusBadRequest, Msg: "reading the webhook body: " + err.Error()})
		return
	}
	r, err := s.opts.Triggers.Webhook(c.Request.Context(), path, c.Request.Header, body)
	switch {
	case errors.Is(err, trigger.ErrSignature):
		s.api.Fail(c, &api.Error{Status: http.StatusUnauthorized, Msg: "missing or invalid signature: sign the raw body with HMAC-SHA256 and the trigger's secret, and send sha256=<hex> in the trigger's signature header"})
	case errors.Is(err, trigger.ErrNotFound):
		s.api.Fail(c, &api.Error{Status: http.StatusNotFound, Msg: "no webhook trigger has the path " + path})
	case err != nil:
		s.api.Fail(c, err)
	default:
		c.JSON(http.StatusAccepted, webhookAccepted{RunID: r.ID, SessionID: r.SessionID, Trigger: r.Trigger, Status: string(r.Status)})
	}
}

// hookRoutes document the webhook route in the OpenAPI document.
func hookRoutes() []api.Route {
	return []api.Route{{Method: "post", Path: "/hooks/{path}", Tag: "Triggers", Summary: "Call a webhook trigger",
		Desc:   "Starts a background run of the trigger's agent or team. Authenticated by the body's HMAC-SHA256 under the trigger's secret, sent as sha256=<hex> in the trigger's signature header (X-Hub-Signature-256 by default), not by an API key. The run's message is the raw body unless the trigger sets message. {path} may contain /.",
		Params: []api.Param{api.PathParam("path", "The trigger's webhook path")}, Body: map[string]any{}, Status: http.StatusAccepted, Resp: webhookAccepted{},
		Errors: map[int]string{http.StatusUnauthorized: "Missing or invalid signature: no run is started", http.StatusNotFound: "No webhook trigger has this path"}, NoAuth: true}}
}
