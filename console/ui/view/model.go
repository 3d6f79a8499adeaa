// Package view holds the console's HTML: templ components for the layout, the
// pages and the fragments htmx swaps in. Components take plain data prepared
// by package console from the same engine, store and telemetry calls the REST
// API makes; they never fetch anything themselves.
package view

import (
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// Frame is what every page's layout needs.
type Frame struct {
	Title  string
	Active string // the nav entry to highlight: overview, agents, sessions, traces, knowledge, config
	// KeyName says who is signed in, by the key's bound user and name
	// ("alice · key #1"), when auth is on; empty when signed out or open.
	KeyName string
	// Hide holds the navigation entries (by id) whose page the key may not
	// open; nil shows them all.
	Hide   map[string]bool
	AuthOn bool
	// Approvals shows the approvals inbox in the navigation, with its live
	// pending count (principals with approvals:write).
	Approvals bool
	Version   string
	// Assets maps static file names to their versioned URLs.
	Assets func(name string) string
}

// Diagnostic is one spec problem, rendered as file:line:col: path: message.
type Diagnostic struct {
	Severity string // error or warning
	Text     string
}

// Reload is the state of the last reload.
type Reload struct {
	Generation uint64
	Version    string
	Time       time.Time
	Duration   time.Duration
	Error      string
}

// KindCount counts the documents of one kind by status.
type KindCount struct {
	Kind              string
	OK, Stale, Broken int
}

// Overview is the home page.
type Overview struct {
	Reload   Reload
	Dirs     []string
	Counts   []KindCount
	Broken   []Diagnostic
	Recent   []store.Run
	Activity []store.ActivityBucket
	// Today is what today's (UTC) runs cost, nil without sessions:read.
	Today *store.SpendLine
}

// Target is an agent or a team as the console lists it.
type Target struct {
	Kind        string // agent or team
	Name        string
	Description string
	Model       string
	Demo        bool // the offline echo model
	Status      string
	Tools       []string
	Knowledge   []string
	Members     []Member
	Mode        string
}

// Member is a team's member: an agent or a team.
type Member struct {
	Kind string // agent or team
	Name string
}

// URL is the target's console page.
func (t Target) URL() string { return targetURL(t.Kind, t.Name) }

// Targets is the agents and teams page.
type Targets struct {
	Agents, Teams []Target
	Broken        []Diagnostic
}

// Endpoint is one API route of a target with a copyable example.
type Endpoint struct {
	Method, Path, Description, Curl string
}

// TargetPage is an agent's or team's page with its chat pane.
type TargetPage struct {
	Target Target
	File   string
	// Edit opens File in the editor; "" for keys that may not edit.
	Edit        string
	YAML        string
	Diagnostics []Diagnostic
	Endpoints   []Endpoint
	// SessionID continues a session in the chat pane; Transcript holds its runs.
	SessionID  string
	Transcript []store.Run
	Omitted    int // older runs left out
	CanRun     bool
	// Files shows the chat's file input: the server keeps run files.
	Files bool
}

// Sessions is the sessions list.
type Sessions struct {
	Search     string
	Rows       []store.Session
	Page       int
	TotalPages int
	Total      int
	CanWrite   bool
}

// Memories is the memories page: one page of memories, of one user when
// the key is bound or the filter names one.
type Memories struct {
	// Enabled is false when the server runs without memories.
	Enabled bool
	// User filters by user; Bound means the key is tied to it.
	User       string
	Bound      bool
	Search     string
	Rows       []memory.Memory
	Page       int
	TotalPages int
	Total      int
	CanWrite   bool
}

// MaxSessionName bounds session names in characters, for the console's
// rename form as for the API.
const MaxSessionName = session.MaxSessionName

// SessionPage is one session's transcript.
type SessionPage struct {
	Session store.Session
	Runs    []store.Run
	Members map[string][]store.Run // member runs by parent run id
	// Omitted counts the older runs left out to bound the page.
	Omitted  int
	CanWrite bool
	Traces   bool // link runs to their traces
}

// TraceFilter is the traces list's filter form.
type TraceFilter struct {
	Target string // agent or team name
	Status string // OK or ERROR
	Since  string // the name of one of TraceWindows, or empty for all
}

// TraceWindows are the time windows the traces list filters by, in the order
// the form offers them.
var TraceWindows = []struct {
	Name string
	Span time.Duration
}{{"15m", 15 * time.Minute}, {"1h", time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}}

// Traces is the traces list.
type Traces struct {
	Enabled    bool
	Filter     TraceFilter
	Targets    []string
	Rows       []telemetry.TraceSummary
	Page       int
	TotalPages int
	Total      int
}

// SpanRow is one bar of the waterfall.
type SpanRow struct {
	telemetry.Span
	Depth      int
	Offset     float64 // percent of the trace's duration before the span starts
	Width      float64 // percent of the trace's duration the span lasts
	Attributes [][2]string
	// Anchor is the row's element id for a workflow step's span, which a
	// workflow run page's step links point at; empty for other spans.
	Anchor string
	// Conversation is what a model request sent and what it answered (the
	// GenAI message attributes), shown as a conversation; nil when the
	// span records none.
	Conversation []ChatMessage
}

// ChatMessage is one message of a model request's conversation: the system
// instructions, an input message or the answer.
type ChatMessage struct {
	Role   string // system, user, assistant or tool
	Output bool   // the model's answer to this request
	Parts  []ChatPart
}

// ChatPart is a text, a tool call (Name, Text its arguments) or a tool
// result (Text), with the call's ID.
type ChatPart struct {
	Type string // text, tool_call or tool_call_response
	Text string
	Name string
	ID   string
}

// TracePage is one trace's waterfall.
type TracePage struct {
	Summary telemetry.TraceSummary
	Rows    []SpanRow
}

// Base is a knowledge base with its document count.
type Base struct {
	Name      string
	Store     string
	Search    string
	Embedder  string
	Documents int
	// Of those, still being ingested and failed.
	Processing, Failed int
	// Kafka is the topic the base follows ("" for none); Lag the records
	// of it this replica has not indexed yet, nil while its consumer is
	// not running.
	Kafka string
	Lag   *int64
}

// Knowledge is the knowledge page.
type Knowledge struct {
	Enabled  bool
	Bases    []Base
	Docs     []knowledge.Document // one page, the most recently updated first
	Total    int
	Page     int
	Pages    int
	CanWrite bool
	MaxBytes int64
}

// SearchResult is the search playground's answer.
type SearchResult struct {
	Query string
	Mode  string
	Hits  []knowledge.Hit
	Took  time.Duration
	Error string
}

// ConfigFile is one YAML file with its documents.
type ConfigFile struct {
	Path string
	// Edit opens the file in the editor; "" for keys that may not edit.
	Edit        string
	Size        int
	Failed      bool
	Diagnostics []Diagnostic
	Objects     []ConfigObject
}

// ConfigObject is one document of a file.
type ConfigObject struct {
	Kind, Name, Status string
	Generation         uint64
	Diagnostics        []Diagnostic
}

// Config is the config page.
type Config struct {
	Dirs     []string
	Reload   Reload
	Files    []ConfigFile
	CanAdmin bool
	// Flash reports the result of a reload the user asked for.
	Flash string
}

// Problem is an error page.
type Problem struct {
	Title   string
	Message string
	Hint    string
}

// Login asks for an API key.
type Login struct {
	Error string
	Next  string
}

// ChatUsage closes an answer: in the chat pane, and for each run of a
// transcript.
type ChatUsage struct {
	RunID, SessionID string
	Status           string
	Error            string
	Metrics          event.Metrics
	// TraceURL links the run's trace; empty for none.
	TraceURL string
	// SessionLink links the run in its session's page.
	SessionLink bool
}

// Jobs is the job engine's page: its queues' counts and a page of jobs.
type Jobs struct {
	Queues []JobQueue
	Rows   []JobRow
	Filter JobFilter
	// States and Kinds are what the filters offer.
	States, Kinds, QueueNames []string
	// Next continues the list (a cursor); empty on the last page.
	Next     string
	CanAdmin bool
	// Flash reports a requeue the user asked for.
	Flash string
}

// JobFilter is the job list's filter.
type JobFilter struct {
	State, Kind, Queue string
}

// JobQueue is one queue's counts.
type JobQueue struct {
	Name                                                                      string
	Concurrency                                                               int
	Available, Scheduled, Running, Retryable, Completed, Cancelled, Discarded int
	OldestAvailable                                                           time.Duration
}

// JobRow is one job.
type JobRow struct {
	ID                   int64
	Kind, Queue, State   string
	Attempt, MaxAttempts int
	CreatedAt            time.Time
	FinalizedAt          *time.Time
	// Summary is "key=value" pairs naming the job (never its input).
	Summary []string
	Errors  []JobError
}

// JobError is one failed attempt.
type JobError struct {
	At      time.Time
	Attempt int
	Error   string
}

// fileURL is the console's download route of a file sent with a run.
func fileURL(f store.RunFile) string {
	return "/ui/sessions/" + f.SessionID + "/files/" + f.ID
}
