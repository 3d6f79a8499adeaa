// Package approval decides which tool calls need a human (or the client)
// before they run, and declares the approvals inbox: the record of each call
// that waits for a confirmation, and the Inbox interface the store
// implements.
//
// A Gate is compiled once per tool from its spec (approval policies, type
// external, user_input) and shared by every run; Check evaluates it for one
// call. The policies' CEL conditions and reason templates were compiled by
// spec at decode, so checking a call costs one evaluation.
package approval

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/expr"
)

// Gate is what one tool (or one MCP server's tools) requires before a call
// runs. The zero of *Gate, nil, requires nothing.
type Gate struct {
	policies  spec.ToolApproval
	external  bool
	userInput []event.UserInputField
}

// NewGate compiles the control points of a Tool document; nil when it has
// none.
func NewGate(t *spec.Tool) *Gate {
	if t == nil || len(t.Approval) == 0 && t.Type != spec.ToolExternal && len(t.UserInput) == 0 {
		return nil
	}
	g := &Gate{policies: t.Approval, external: t.Type == spec.ToolExternal}
	props, _ := t.Parameters["properties"].(map[string]any)
	for _, name := range t.UserInput {
		f := event.UserInputField{Name: name, FieldType: "str"}
		if p, ok := props[name].(map[string]any); ok {
			if typ, ok := p["type"].(string); ok {
				f.FieldType = fieldType(typ)
			}
			f.Description, _ = p["description"].(string)
		}
		g.userInput = append(g.userInput, f)
	}
	return g
}

// fieldType names a JSON Schema type as AgentOS's user_input_schema does
// (Python type names).
func fieldType(t string) string {
	switch t {
	case "number":
		return "float"
	case "integer":
		return "int"
	case "boolean":
		return "bool"
	case "array":
		return "list"
	case "object":
		return "dict"
	}
	return "str"
}

// UserInput returns the parameters asked of the user, which the model is not
// shown.
func (g *Gate) UserInput() []string {
	if g == nil {
		return nil
	}
	out := make([]string, len(g.userInput))
	for i, f := range g.userInput {
		out[i] = f.Name
	}
	return out
}

// Call is the context of one tool call a gate checks.
type Call struct {
	ID    string
	Tool  string
	Args  map[string]any
	Agent string
	User  string
}

// Need is what a call waits for: its ToolExecution, and for a confirmation
// the policy that asked for it.
type Need struct {
	Exec      event.ToolExecution
	Approvers spec.Approvers
	Timeout   time.Duration
	Default   string
}

// Check returns what call c needs before it runs, nil for nothing. An error
// (a condition that failed to evaluate) fails closed: the caller should treat
// it as a confirmation with the error as the reason, never run the call.
func (g *Gate) Check(ctx context.Context, c Call) (*Need, error) {
	if g == nil {
		return nil, nil
	}
	n := &Need{Exec: event.ToolExecution{ToolCallID: c.ID, ToolName: c.Tool, ToolArgs: c.Args}}
	needed := false
	if g.external {
		n.Exec.ExternalExecutionRequired, needed = true, true
	}
	if len(g.userInput) > 0 {
		n.Exec.RequiresUserInput, needed = true, true
		n.Exec.UserInputSchema = append([]event.UserInputField(nil), g.userInput...)
	}
	vars := expr.Vars{"args": orEmpty(c.Args), "tool": c.Tool, "agent": c.Agent, "user": c.User}
	for i := range g.policies {
		p := &g.policies[i]
		if !p.Covers(c.Tool) {
			continue
		}
		if x := p.WhenExpr(); x != nil {
			ok, err := x.EvalBool(ctx, vars)
			if err != nil {
				// Fail closed: an unreadable condition asks a human.
				n.Exec.RequiresConfirmation, n.Exec.Reason = true, fmt.Sprintf("the approval condition could not be evaluated: %v", err)
				n.Approvers, n.Timeout, n.Default = p.Approvers, p.Timeout.D(), p.Default
				return n, nil
			}
			if !ok {
				continue
			}
		}
		n.Exec.RequiresConfirmation, needed = true, true
		n.Approvers, n.Timeout, n.Default = p.Approvers, p.Timeout.D(), p.Default
		if tm := p.ReasonTemplate(); tm != nil {
			reason, err := tm.Render(ctx, vars)
			if err != nil {
				reason = fmt.Sprintf("(the reason could not be rendered: %v)", err)
			}
			n.Exec.Reason = reason
		}
		break
	}
	if !needed {
		return nil, nil
	}
	return n, nil
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Status is an approval's state.
type Status string

// Approval statuses.
const (
	StatusPending  Status = "pending"
	StatusApproved Status = "approved"
	StatusRejected Status = "rejected"
	StatusExpired  Status = "expired"
)

// Statuses lists every status, for filters.
var Statuses = []Status{StatusPending, StatusApproved, StatusRejected, StatusExpired}

// Record is one call waiting for (or given) a confirmation: a row of the
// inbox.
type Record struct {
	ID         string
	RunID      string
	SessionID  string
	ToolCallID string
	// TargetKind is agent, team or workflow (an approval step: Tool and
	// ToolCallID are the step's path); TargetName its name.
	TargetKind string
	TargetName string
	UserID     string
	Tool       string
	Args       map[string]any
	Reason     string
	Approvers  spec.Approvers
	Status     Status
	// Default is applied at Deadline (approve or reject); a zero deadline
	// never expires.
	Default   string
	Deadline  time.Time
	DecidedBy string
	DecidedAt time.Time
	Comment   string
	CreatedAt time.Time
}

// TargetWorkflow is the TargetKind of a workflow's approval step.
const TargetWorkflow = "workflow"

// TargetLearning is the TargetKind of a proposed learning (an agent's
// learning in mode propose): TargetName is the agent, Args the insight
// ({text, topic, knowledge}). Approving it saves the insight into the
// knowledge base; it holds no run (its run has finished, or goes on).
const TargetLearning = "learning"

// Approved reports whether a decided record lets the call run: approved,
// or expired with an approving default.
func (r *Record) Approved() bool {
	return r.Status == StatusApproved || r.Status == StatusExpired && r.Default == spec.DecisionApprove
}

// Viewer restricts what an inbox query sees: nil (an administrator, or an
// open server) sees everything; otherwise the records whose approvers list
// the user, or one of the scopes.
type Viewer struct {
	UserID string
	Scopes []string
}

// CanDecide reports whether v may see and decide r.
func (v *Viewer) CanDecide(r *Record) bool {
	if v == nil {
		return true
	}
	for _, u := range r.Approvers.Users {
		if v.UserID != "" && u == v.UserID {
			return true
		}
	}
	for _, s := range r.Approvers.Scopes {
		for _, h := range v.Scopes {
			if s == h {
				return true
			}
		}
	}
	return false
}

// Query selects inbox records, newest first, one page at a time.
type Query struct {
	Viewer     *Viewer
	Status     Status
	TargetKind string
	TargetName string
	UserID     string
	RunID      string
	Limit      int
	Page       int
}

// Decision resolves one record.
type Decision struct {
	Approved bool
	Comment  string
	By       string
	At       time.Time
	// Expired marks the default applied at the deadline (status expired).
	Expired bool
}

// ErrNotFound is a record that does not exist or that the viewer may not
// see.
var ErrNotFound = errors.New("approval not found")

// DecidedError is the refusal of a second decision: Record says who
// decided, and when.
type DecidedError struct{ Record *Record }

func (e *DecidedError) Error() string {
	by := e.Record.DecidedBy
	if by == "" {
		by = "someone"
	}
	return fmt.Sprintf("approval %s was already %s by %s at %s", e.Record.ID, e.Record.Status, by, e.Record.DecidedAt.UTC().Format(time.RFC3339))
}

// Inbox stores approval records (store.DB implements it).
type Inbox interface {
	// ListApprovals returns a page of records and the total count.
	ListApprovals(ctx context.Context, q Query) ([]Record, int, error)
	// CountApprovals counts the records q selects (no paging).
	CountApprovals(ctx context.Context, q Query) (int, error)
	// GetApproval returns record id if v may see it, else ErrNotFound.
	GetApproval(ctx context.Context, id string, v *Viewer) (*Record, error)
	// ResolveApproval decides a pending record, conditionally: a record
	// already decided is a *DecidedError. It returns the decided record and
	// how many records of its run are still pending.
	ResolveApproval(ctx context.Context, id string, d Decision) (*Record, int, error)
}

// NewID returns a UUID of version 7 (time-ordered), as run ids are.
func NewID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:])
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
