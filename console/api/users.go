package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/store"
)

// UserEraser erases one kind of a user's data for DELETE /users/{user_id}.
// Each kind of per-user data (sessions and runs, learnings, memories)
// brings one, listed in Options.Erasers; erasers run in order and must be
// idempotent, since a failed erasure is erased again by a retry.
type UserEraser interface {
	// Kind names the data erased ("learnings"), the key of the route's
	// report.
	Kind() string
	// Erase removes user's data and returns how many items it removed.
	Erase(ctx context.Context, user string) (int, error)
}

// LearningDecider applies a decided learning proposal (engine/learning's
// Learner): approved, it saves the insight into its knowledge base.
type LearningDecider interface {
	Decide(ctx context.Context, r *approval.Record) error
}

// userSessions reads and deletes a user's sessions (the store).
type userSessions interface {
	ListSessions(ctx context.Context, q store.SessionQuery) ([]store.Session, int, error)
	SessionDeleter
}

// SessionEraser erases a user's sessions with their runs (and what goes
// with them: events, approvals), stopping their runs in progress first, as
// DELETE /sessions does.
type SessionEraser struct {
	Store userSessions
	Runs  SessionStopper
}

var (
	_ UserEraser   = SessionEraser{}
	_ userSessions = (*store.DB)(nil)
)

// Kind implements UserEraser.
func (SessionEraser) Kind() string { return "sessions" }

// Erase implements UserEraser.
func (e SessionEraser) Erase(ctx context.Context, user string) (int, error) {
	f := store.Filter{UserID: user}
	n := 0
	for {
		page, _, err := e.Store.ListSessions(ctx, store.SessionQuery{Filter: f, Limit: store.MaxLimit})
		if err != nil {
			return n, err
		}
		if len(page) == 0 {
			return n, nil
		}
		ids := make([]string, len(page))
		for i, s := range page {
			ids[i] = s.ID
		}
		e.Runs.StopSessions(ctx, ids, user)
		deleted, err := e.Store.DeleteSessions(ctx, ids, f)
		n += len(deleted)
		if err != nil {
			return n, err
		}
		if len(deleted) == 0 {
			return n, nil // listed but not deletable: never loop
		}
	}
}

// erasers are the server's: the options' erasers, then the user's sessions
// (last, so that an eraser may still read the user's runs).
func (h *Handler) erasers() []UserEraser {
	out := append([]UserEraser(nil), h.opts.Erasers...)
	return append(out, SessionEraser{Store: h.opts.Store, Runs: h.opts.Runs})
}

// eraseUserResponse reports what DELETE /users/{user_id} erased.
type eraseUserResponse struct {
	UserID string `json:"user_id" openapi:"required"`
	// Erased counts the items erased by kind (sessions, learnings, ...).
	Erased map[string]int `json:"erased" openapi:"required"`
}

// deleteUser answers DELETE /users/{user_id}: every eraser removes its kind
// of the user's data. Admin only: erasing is for operators honouring a
// deletion request, and a key bound to a user may delete its sessions
// through /sessions already.
func (h *Handler) deleteUser(c *gin.Context) error {
	user := strings.TrimSpace(c.Param("user_id"))
	if user == "" {
		return Errorf(http.StatusUnprocessableEntity, "user_id is empty: name the user whose data to erase")
	}
	out := eraseUserResponse{UserID: user, Erased: map[string]int{}}
	for _, e := range h.erasers() {
		n, err := e.Erase(c.Request.Context(), user)
		if err != nil {
			return fmt.Errorf("erasing the %s of user %s (erase again to finish): %w", e.Kind(), user, err)
		}
		out.Erased[e.Kind()] += n
	}
	h.log.Info("user erased", "user_id", user, "erased", out.Erased)
	c.JSON(http.StatusOK, out)
	return nil
}
