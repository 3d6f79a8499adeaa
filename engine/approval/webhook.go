package approval

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// SignatureHeader carries a webhook body's HMAC-SHA256 under the shared
// secret, as "sha256=<hex>"; receivers recompute it over the raw body and
// compare in constant time.
const SignatureHeader = "X-Troupe-Signature"

// Announcement is the body of the webhook that announces a new approval.
type Announcement struct {
	Event    string            `json:"event"` // approval.created
	Approval AnnouncedApproval `json:"approval"`
}

// AnnouncedApproval is the approval as the webhook tells it.
type AnnouncedApproval struct {
	ID         string         `json:"id"`
	RunID      string         `json:"run_id"`
	SessionID  string         `json:"session_id"`
	TargetKind string         `json:"target_kind"`
	TargetName string         `json:"target_name"`
	UserID     string         `json:"user_id,omitempty"`
	Tool       string         `json:"tool_name"`
	Args       map[string]any `json:"tool_args"`
	Reason     string         `json:"reason,omitempty"`
	Users      []string       `json:"approver_users"`
	Scopes     []string       `json:"approver_scopes"`
	Status     Status         `json:"status"`
	Default    string         `json:"default_decision"`
	Deadline   *time.Time     `json:"deadline,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
}

// Announce returns the webhook body announcing r.
func Announce(r *Record) ([]byte, error) {
	a := AnnouncedApproval{ID: r.ID, RunID: r.RunID, SessionID: r.SessionID, TargetKind: r.TargetKind, TargetName: r.TargetName,
		UserID: r.UserID, Tool: r.Tool, Args: r.Args, Reason: r.Reason, Users: r.Approvers.Users, Scopes: r.Approvers.Scopes,
		Status: r.Status, Default: r.Default, CreatedAt: r.CreatedAt.UTC()}
	if a.Users == nil {
		a.Users = []string{}
	}
	if a.Scopes == nil {
		a.Scopes = []string{}
	}
	if !r.Deadline.IsZero() {
		d := r.Deadline.UTC()
		a.Deadline = &d
	}
	return json.Marshal(Announcement{Event: "approval.created", Approval: a})
}

// Sign returns the SignatureHeader value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
