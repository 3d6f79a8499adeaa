package session

import (
	"context"
	"errors"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
)

// Session and run types: what a session talks to and what ran.
const (
	TypeAgent = "agent"
	TypeTeam  = "team"
	// TypeWorkflow is a workflow's session and run; its steps' agent and
	// team runs are child runs of types agent and team.
	TypeWorkflow = "workflow"
)

// TypeOf returns the session type of a kind: TypeTeam for teams,
// TypeWorkflow for workflows, TypeAgent for anything else.
func TypeOf(kind spec.Kind) string {
	switch kind {
	case spec.KindTeam:
		return TypeTeam
	case spec.KindWorkflow:
		return TypeWorkflow
	}
	return TypeAgent
}

// KindOf returns the kind a session or run type runs: the inverse of TypeOf.
func KindOf(typ string) spec.Kind {
	switch typ {
	case TypeTeam:
		return spec.KindTeam
	case TypeWorkflow:
		return spec.KindWorkflow
	}
	return spec.KindAgent
}

// MaxSessionName bounds a session's name in characters: the API's rename,
// the console's form and its pages all hold to it.
const MaxSessionName = 200

// Session is a conversation with one agent or team.
type Session struct {
	ID          string
	Type        string // TypeAgent or TypeTeam
	ComponentID string // the agent's or team's name
	UserID      string
	// Name is derived from the first run's input unless the caller gives
	// one or the session is renamed.
	Name  string
	State map[string]any
	// Summary is the session's running summary (nil when it has none);
	// stores fill it when they list or read sessions, not when they start
	// a run.
	Summary   *Summary
	CreatedAt time.Time
	UpdatedAt time.Time
	// RunCount is the number of runs in the session, team members' included.
	// Stores fill it when they list or read sessions, not when they start a
	// run.
	RunCount int
	// Cost is what the session's runs cost; filled with RunCount.
	Cost model.Cost
}

// Filter restricts reads and changes to one user's rows. An empty UserID
// means no restriction (an administrator).
type Filter struct {
	UserID string
}

// Run is one turn of a session: an agent or team answering one input, or a
// team member answering its part of one.
type Run struct {
	ID        string
	SessionID string
	// ParentRunID is set for the runs of a team's members; their ComponentID
	// names the member, while SessionID is the team's session.
	ParentRunID string
	ComponentID string
	Type        string // TypeAgent or TypeTeam
	UserID      string // always the session's user
	Input       string
	// InputRewritten marks Input as changed by the run after it started (an
	// input guardrail redacted it): FinishRun stores it over the input
	// recorded at start, so the stored run never keeps what was redacted.
	InputRewritten bool
	Content        string
	// Partial marks Content as the part of the answer streamed before the
	// run was cancelled or failed, not a whole answer.
	Partial bool
	Status  event.Status
	Error   string
	// ErrorKind classifies Error as the run's RunError does (guardrail,
	// budget_exceeded, model, tool…); not stored.
	ErrorKind   string
	Tools       []event.ToolCall
	Messages    []model.Message // the turn's messages, fed back as history
	Metrics     event.Metrics
	Model       string
	Provider    string
	SpecVersion string // the spec snapshot version the run used
	// Trigger names the trigger that started the run, if one did; the
	// store records it with the trigger's firing (store.RecordFire).
	Trigger string
	// References are the knowledge passages the run used.
	References []event.Reference
	// ReasoningSteps are the run's reasoning steps (agent.Result's).
	ReasoningSteps []event.Thought
	// Files are the files sent with the run; StartRun stores them with it.
	Files     []File
	CreatedAt time.Time
	UpdatedAt time.Time
}

// File is a file a user sent with a run, as stored with it: its bytes are
// in a files.Store under Key.
type File struct {
	ID        string
	RunID     string
	SessionID string
	Name      string
	MediaType string
	Size      int64
	SHA256    string
	Key       string
	CreatedAt time.Time
}

// Store is where the service keeps sessions and runs. store.DB implements it
// on SQLite and PostgreSQL. Its methods are called concurrently.
type Store interface {
	// StartRun records the start of r in session s, creating s when no
	// session s.ID exists. When s.ID exists but belongs to another user or
	// component it writes nothing and returns an error wrapping ErrNotFound.
	// On success r is RUNNING (PENDING if it was) with its timestamps set, and s is the stored
	// session.
	StartRun(ctx context.Context, s *Session, r *Run) error
	// FinishRun stores r's final state; r.Status must be terminal. It
	// returns an error wrapping ErrNotFound when the run does not exist
	// (its session was deleted).
	FinishRun(ctx context.Context, r *Run) error
	// GetSession returns session id if f lets the caller see it, or an
	// error wrapping ErrNotFound.
	GetSession(ctx context.Context, id string, f Filter) (*Session, error)
	// History returns the messages of the last n completed top-level runs of
	// the session, one slice per run, oldest run first. The caller may
	// retain and modify the result.
	History(ctx context.Context, sessionID string, n int) ([][]model.Message, error)
	// Interrupted lists the runs found RUNNING when the store opened, left
	// by a process that died, and already marked failed. The caller must
	// not modify them.
	Interrupted() []Run
}

// StateSaver saves a session's key-value state, written by a workflow's
// set_state (store.DB).
type StateSaver interface {
	SetSessionState(ctx context.Context, sessionID string, state map[string]any) error
}

// Target is an agent or team resolved on the current snapshot and pinned for
// one run: the snapshot's resources stay open until Release is called.
type Target struct {
	Runner  agent.Runner
	Version string // the snapshot's spec version
	Release func()
}

// Targets resolves the agent or team a run names. engine.Engine implements it.
type Targets interface {
	// Pin returns kind/name on the current snapshot, pinned. It returns an
	// error wrapping ErrBroken for a target whose definition has errors and
	// no good version, and one wrapping ErrNotFound when there is no such
	// target.
	Pin(kind spec.Kind, name string) (Target, error)
}

var (
	// ErrNotFound reports an unknown agent, team or session; the HTTP layer
	// answers 404. Stores return it (or an error wrapping it) for a session
	// that does not exist or that the caller may not see.
	ErrNotFound = errors.New("not found")
	// ErrSessionNotFound is the ErrNotFound of a session that does not exist
	// or belongs to someone else, for callers that tell it apart from an
	// unknown target (the OpenAI surface's error codes).
	ErrSessionNotFound = &kindError{msg: "session not found", kind: ErrNotFound}
	// ErrBroken reports a target whose definition has errors and no good
	// version to fall back on; the HTTP layer answers 409.
	ErrBroken = errors.New("broken definition")
	// ErrInvalid reports input the service refuses (a malformed session id,
	// a NUL byte in the message); the HTTP layer answers 422.
	ErrInvalid = errors.New("invalid input")
	// ErrBusy reports a background run refused because the queue of runs
	// is full; the client should retry later (Error.RetryAfter).
	ErrBusy = errors.New("too many queued runs")

	// ErrCancelled is the cause of a run cancelled through Cancel.
	ErrCancelled = errors.New("cancelled by request")
	// ErrSessionDeleted is the cause of a run whose session was deleted.
	ErrSessionDeleted = errors.New("the session was deleted while the run was in progress")
	// ErrShutdown is the cause of a run still going when the drain at
	// shutdown ran out of time.
	ErrShutdown = errors.New("the server shut down while the run was in progress")
)

// kindError is a sentinel that is also another (ErrSessionNotFound is an
// ErrNotFound).
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Error is a refusal of Start with the message a client should see. Its kind
// (ErrNotFound, ErrSessionNotFound, ErrBroken, ErrInvalid) is what errors.Is
// finds.
type Error struct {
	Kind error
	Msg  string
	// RetryAfter says when to try again, for ErrBusy.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the error's kind.
func (e *Error) Unwrap() error { return e.Kind }
