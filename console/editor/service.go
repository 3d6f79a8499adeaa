package editor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// Engine is what the editor needs from the engine: its folders, a check of
// a buffer as the next reload would see it, and the reload itself.
type Engine interface {
	Dirs() []string
	Check(overlay map[string][]byte) (spec.Diagnostics, error)
	Reload(ctx context.Context) (*engine.ReloadResult, error)
	Current() *engine.Snapshot
}

// Audit keeps the log of the editor's writes (the store).
type Audit interface {
	AddEditorAudit(ctx context.Context, a store.EditorAudit) (int64, error)
	EditorAudits(ctx context.Context, limit int) ([]store.EditorAudit, error)
}

// Spans records the span of each write (the telemetry recorder).
type Spans interface {
	Record(spans ...telemetry.Span)
}

var (
	_ Engine = (*engine.Engine)(nil)
	_ Audit  = (*store.DB)(nil)
	_ Spans  = (*telemetry.Recorder)(nil)
)

// Options configure a Service.
type Options struct {
	Engine Engine
	Audit  Audit
	// Spans records a span per write; nil records none (tracing off).
	Spans  Spans
	Logger *slog.Logger
	// MaxFileSize bounds a file and a buffer (default spec.DefaultMaxFileSize,
	// the loader's own limit).
	MaxFileSize int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service edits the spec files. It is safe for concurrent use; writes are
// serialized, so two saves of one file through one server cannot both pass
// the same hash guard.
type Service struct {
	eng     Engine
	audit   Audit
	spans   Spans
	log     *slog.Logger
	now     func() time.Time
	maxSize int64
	folders []folder

	mu sync.Mutex // serializes writes (see lock)
	// warnUnlocked logs once that the folder cannot be locked.
	warnUnlocked sync.Once
}

// New returns a Service over the engine's spec folders.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = spec.DefaultMaxFileSize
	}
	return &Service{eng: opts.Engine, audit: opts.Audit, spans: opts.Spans, log: opts.Logger.With("component", "editor"), now: opts.Now,
		maxSize: opts.MaxFileSize, folders: folders(opts.Engine.Dirs())}
}

// Error is a request the editor refuses, with its HTTP status. A conflict
// carries what is on disk now.
type Error struct {
	Status   int
	Msg      string
	Conflict *Conflict
}

func (e *Error) Error() string { return e.Msg }

// Conflict is the answer to a write whose base hash is not the file's
// hash on disk: what is there now, so the editor can show a diff.
type Conflict struct {
	Detail         string `json:"detail"`
	Path           string `json:"path"`
	CurrentHash    string `json:"current_hash"`
	CurrentContent string `json:"current_content"`
	Exists         bool   `json:"exists"`
}

func conflict(path string, f file, msg string) *Error {
	return &Error{Status: http.StatusConflict, Msg: msg, Conflict: &Conflict{Detail: msg, Path: path, CurrentHash: f.hash, CurrentContent: string(f.content), Exists: f.exists}}
}

// FileInfo is a spec file in a listing.
type FileInfo struct {
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	Hash       string    `json:"hash"`
	ModifiedAt time.Time `json:"modified_at"`
}

// Files lists the spec files the editor may open, sorted by path.
func (s *Service) Files() ([]FileInfo, error) {
	out := []FileInfo{}
	for _, f := range s.folders {
		listed, err := spec.SpecFiles(f.dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("listing %s: %w", f.dir, err)
		}
		for _, p := range listed {
			rel, err := filepath.Rel(f.dir, p)
			if err != nil {
				continue
			}
			name := filepath.ToSlash(rel)
			if f.name != "" {
				name = f.name + "/" + name
			}
			t, err := s.resolve(name)
			if err != nil {
				continue // not a path the editor can name (a hidden file in a listed folder)
			}
			cur, _, err := s.read(t)
			if err != nil || !cur.exists {
				continue // outside the folder, too large, gone: not editable
			}
			out = append(out, FileInfo{Path: name, Size: cur.size, Hash: cur.hash, ModifiedAt: cur.modified.UTC()})
		}
	}
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// Content is a file's content and its hash.
type Content struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	Hash    string `json:"hash"`
}

// Read returns a file's content.
func (s *Service) Read(p string) (*Content, error) {
	t, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	f, _, err := s.read(t)
	if err != nil {
		return nil, err
	}
	if !f.exists {
		return nil, &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("%s does not exist: create it with PUT and an empty base_hash", p)}
	}
	return &Content{Path: p, Content: string(f.content), Hash: f.hash}, nil
}

// Diagnostic is a problem the checker found, positioned for underlining:
// lines and columns are 1-based and count characters (Unicode code
// points); the end is that of the offending token when it can be told,
// else the end of the line.
type Diagnostic struct {
	Path      string `json:"path"`
	Line      int    `json:"line"`
	Column    int    `json:"column"`
	EndLine   int    `json:"end_line"`
	EndColumn int    `json:"end_column"`
	Severity  string `json:"severity"`
	Message   string `json:"message"`
	// Object is the object path the message is about (agents.x.tools[1]).
	Object string `json:"object,omitempty"`
}

// Check checks content as the file at p, in place of what is on disk (or
// added, for a new file), with every other file as on disk, and returns the
// diagnostics of every file, as the reload after a save would report them.
func (s *Service) Check(p string, content []byte) ([]Diagnostic, error) {
	t, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	if int64(len(content)) > s.maxSize {
		return nil, s.tooLarge(p)
	}
	if _, err := t.confine(); err != nil {
		return nil, err
	}
	ds, err := s.eng.Check(map[string][]byte{t.abs: content})
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", p, err)
	}
	return s.diagnostics(ds, map[string][]byte{t.abs: content}), nil
}

func (s *Service) tooLarge(p string) error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("the content of %s is larger than %d bytes: split it into smaller files", p, s.maxSize)}
}

// diagnostics positions the loader's diagnostics in editor paths, reading
// the files they point into (buffers first) to find where each ends.
func (s *Service) diagnostics(ds spec.Diagnostics, buffers map[string][]byte) []Diagnostic {
	out := make([]Diagnostic, 0, len(ds))
	lines := map[string][]string{}
	for _, d := range ds {
		file := filepath.Clean(d.Pos.File)
		ls, ok := lines[file]
		if !ok {
			data, ok := buffers[file]
			if !ok {
				data, _ = spec.ReadFile(file, s.maxSize)
			}
			ls = strings.Split(string(data), "\n")
			lines[file] = ls
		}
		line, col := max(d.Pos.Line, 1), max(d.Pos.Col, 1)
		endLine, endCol := tokenEnd(ls, line, col)
		out = append(out, Diagnostic{Path: s.editorPath(file), Line: line, Column: col, EndLine: endLine, EndColumn: endCol,
			Severity: d.Severity.String(), Message: d.Msg, Object: d.Path})
	}
	return out
}

// editorPath names a loader path as the editor does; a path outside every
// folder is returned as is.
func (s *Service) editorPath(file string) string {
	if p, ok := s.EditorPath(file); ok {
		return p
	}
	return filepath.ToSlash(file)
}

// EditorPath names a spec file (a path as the loader lists it) as the
// editor's routes do: relative to its spec folder, slash-separated, prefixed
// by the folder's name when there are several. ok is false for a file in no
// folder the editor edits.
func (s *Service) EditorPath(file string) (string, bool) {
	for _, f := range s.folders {
		rel, err := filepath.Rel(filepath.Clean(f.dir), file)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			continue
		}
		if f.name != "" {
			return f.name + "/" + filepath.ToSlash(rel), true
		}
		return filepath.ToSlash(rel), true
	}
	return "", false
}

// tokenEnd finds the end (exclusive, 1-based, in characters) of the YAML
// token starting at line:col: a quoted scalar to its closing quote, a key
// to its colon, a flow item to its comma or bracket, a plain scalar to the
// end of its text; the end of the line when the column is past the text.
func tokenEnd(lines []string, line, col int) (int, int) {
	if line > len(lines) {
		return line, col
	}
	rs := []rune(strings.TrimRight(lines[line-1], "\r"))
	lineEnd := len(rs)
	for lineEnd > 0 && (rs[lineEnd-1] == ' ' || rs[lineEnd-1] == '\t') {
		lineEnd--
	}
	i := col - 1
	if i >= lineEnd {
		return line, max(lineEnd+1, col)
	}
	if q := rs[i]; q == '"' || q == '\'' {
		for j := i + 1; j < len(rs); j++ {
			switch {
			case q == '"' && rs[j] == '\\':
				j++ // an escape: the next character is part of the string
			case rs[j] != q:
			case q == '\'' && j+1 < len(rs) && rs[j+1] == '\'':
				j++ // '' is a quote inside single quotes
			default:
				return line, j + 2
			}
		}
		return line, lineEnd + 1
	}
	if rs[i] == '-' && i+1 < len(rs) && rs[i+1] == ' ' {
		return line, lineEnd + 1 // a whole list item
	}
	j := i
	for ; j < lineEnd; j++ {
		switch r := rs[j]; {
		case r == ',' || r == ']' || r == '}':
			return line, max(j+1, i+2)
		case r == ':' && (j+1 == len(rs) || rs[j+1] == ' ' || rs[j+1] == '\t'):
			return line, max(j+1, i+2)
		case r == ' ' && j+1 < len(rs) && rs[j+1] == '#':
			return line, max(j+1, i+2)
		}
	}
	return line, j + 1
}

// Actor is who writes: the key's name ("open" without keys) and the user
// it is bound to.
type Actor struct {
	Name, UserID string
}

// Reload is the result of the reload that follows a write.
type Reload struct {
	Generation  uint64       `json:"generation"`
	Success     bool         `json:"success"`
	Changed     bool         `json:"changed"`
	Error       string       `json:"error,omitempty"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

// Saved is the answer to a write: the file's hash after it (empty once
// deleted) and before it (empty when it was created).
type Saved struct {
	Path         string  `json:"path"`
	Hash         string  `json:"hash"`
	PreviousHash string  `json:"previous_hash"`
	Reload       *Reload `json:"reload"`
}

// Save writes content to the file at p if its hash on disk is baseHash
// (baseHash "" creates a file that must not exist), then reloads.
func (s *Service) Save(ctx context.Context, who Actor, p string, content []byte, baseHash string) (*Saved, error) {
	t, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	if int64(len(content)) > s.maxSize {
		return nil, s.tooLarge(p)
	}
	start := s.now()
	unlock, err := s.lock(t.folder)
	if err != nil {
		return nil, err
	}
	cur, resolved, err := s.read(t)
	if err != nil {
		unlock()
		return nil, err
	}
	action := "update"
	switch {
	case baseHash == "" && cur.exists:
		unlock()
		return nil, conflict(p, cur, p+" already exists: open it, or choose another name")
	case baseHash == "":
		action = "create"
		if err = mkdirWithin(t); err == nil {
			err = writeAtomic(t.abs, content, 0o644)
		}
	case !cur.exists:
		unlock()
		return nil, conflict(p, cur, p+" was deleted since it was opened: save it again with an empty base_hash to create it")
	case cur.hash != baseHash:
		unlock()
		return nil, conflict(p, cur, p+" changed on disk since it was opened: merge the changes shown and save again with the current hash")
	default:
		err = writeAtomic(resolved, content, cur.mode)
	}
	unlock()
	if err != nil {
		return nil, errWrite(p, err)
	}
	hash := hashOf(content)
	s.record(ctx, who, store.EditorAudit{Action: action, Path: p, HashBefore: cur.hash, HashAfter: hash}, start)
	return &Saved{Path: p, Hash: hash, PreviousHash: cur.hash, Reload: s.reload(ctx)}, nil
}

func errWrite(p string, err error) error {
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	return fmt.Errorf("writing %s: %w", p, err)
}

// Rename moves the file at from, whose hash on disk must be baseHash, to
// to, which must not exist, then reloads.
func (s *Service) Rename(ctx context.Context, who Actor, from, to, baseHash string) (*Saved, error) {
	src, err := s.resolve(from)
	if err != nil {
		return nil, err
	}
	dst, err := s.resolve(to)
	if err != nil {
		return nil, err
	}
	if baseHash == "" {
		return nil, &Error{Status: http.StatusBadRequest, Msg: "base_hash is required: send the hash of the content you opened"}
	}
	// Where both lead is checked first: a path outside the folder is
	// refused as such, whatever the hashes say.
	if _, err := dst.confine(); err != nil {
		return nil, err
	}
	start := s.now()
	unlock, err := s.lock(src.folder, dst.folder)
	if err != nil {
		return nil, err
	}
	cur, _, err := s.read(src)
	if err == nil && (!cur.exists || cur.hash != baseHash) {
		err = conflict(from, cur, from+" changed on disk since it was opened (or was deleted): reload it before renaming")
	}
	var there file
	if err == nil {
		there, _, err = s.read(dst)
	}
	if err == nil && there.exists {
		err = conflict(to, there, to+" already exists: choose another name")
	}
	if err == nil {
		err = mkdirWithin(dst)
	}
	if err == nil {
		err = moveNoReplace(src.abs, dst.abs)
		if errors.Is(err, os.ErrExist) {
			there, _, _ = s.read(dst)
			err = conflict(to, there, to+" already exists: choose another name")
		}
	}
	unlock()
	if err != nil {
		return nil, errWrite(from, err)
	}
	s.record(ctx, who, store.EditorAudit{Action: "rename", Path: to, FromPath: from, HashBefore: cur.hash, HashAfter: cur.hash}, start)
	return &Saved{Path: to, Hash: cur.hash, PreviousHash: cur.hash, Reload: s.reload(ctx)}, nil
}

// moveNoReplace renames from to to, failing with os.ErrExist when to
// exists: a hard link cannot replace a file, as a rename would.
func moveNoReplace(from, to string) error {
	if err := os.Link(from, to); err != nil {
		if errors.Is(err, os.ErrExist) {
			return err
		}
		// No hard links here (some file systems): check, then rename.
		if _, serr := os.Lstat(to); serr == nil {
			return os.ErrExist
		}
		if err := os.Rename(from, to); err != nil {
			return err
		}
		syncDir(filepath.Dir(to))
		return nil
	}
	if err := os.Remove(from); err != nil {
		return err
	}
	syncDir(filepath.Dir(to))
	syncDir(filepath.Dir(from))
	return nil
}

// Delete removes the file at p if its hash on disk is baseHash, then reloads.
func (s *Service) Delete(ctx context.Context, who Actor, p, baseHash string) (*Saved, error) {
	t, err := s.resolve(p)
	if err != nil {
		return nil, err
	}
	if baseHash == "" {
		return nil, &Error{Status: http.StatusBadRequest, Msg: "base_hash is required: send the hash of the content you opened"}
	}
	start := s.now()
	unlock, err := s.lock(t.folder)
	if err != nil {
		return nil, err
	}
	cur, _, err := s.read(t)
	if err == nil && (!cur.exists || cur.hash != baseHash) {
		err = conflict(p, cur, p+" changed on disk since it was opened (or was deleted): reload it before deleting")
	}
	if err == nil {
		err = os.Remove(t.abs)
		syncDir(filepath.Dir(t.abs))
	}
	unlock()
	if err != nil {
		return nil, errWrite(p, err)
	}
	s.record(ctx, who, store.EditorAudit{Action: "delete", Path: p, HashBefore: cur.hash}, start)
	return &Saved{Path: p, PreviousHash: cur.hash, Reload: s.reload(ctx)}, nil
}

// record logs a write: a row in the audit, a span, a log line. The write
// has happened; failing to log it is logged, not answered.
func (s *Service) record(ctx context.Context, who Actor, a store.EditorAudit, start time.Time) {
	end := s.now()
	a.At, a.Actor, a.UserID = end.UTC(), who.Name, who.UserID
	a.TraceID = telemetry.NewTraceID()
	if s.spans != nil {
		attrs := map[string]string{"editor.action": a.Action, "editor.path": a.Path, "editor.actor": a.Actor,
			"editor.hash_before": a.HashBefore, "editor.hash_after": a.HashAfter}
		if a.FromPath != "" {
			attrs["editor.from_path"] = a.FromPath
		}
		s.spans.Record(telemetry.Span{TraceID: a.TraceID, SpanID: telemetry.NewSpanID(), Name: "editor." + a.Action + " " + a.Path, Kind: SpanKind,
			Start: start, End: end, Status: "ok", UserID: a.UserID, Attributes: attrs})
	}
	if _, err := s.audit.AddEditorAudit(context.WithoutCancel(ctx), a); err != nil {
		s.log.Error("spec file written but not audited", "err", err, "path", a.Path, "action", a.Action)
	}
	s.log.Info("spec file written", "action", a.Action, "path", a.Path, "from", a.FromPath, "actor", a.Actor, "user_id", a.UserID,
		"hash_before", a.HashBefore, "hash_after", a.HashAfter, "trace_id", a.TraceID)
}

// SpanKind is the kind of the editor's spans.
const SpanKind = "editor"

// reload runs the reload every save gets (the reload loop's, as POST
// /config/reload): the watcher's reload that follows finds the folder
// unchanged and swaps nothing.
func (s *Service) reload(ctx context.Context) *Reload {
	res, err := s.eng.Reload(ctx)
	snap := s.eng.Current()
	out := &Reload{Generation: snap.Generation(), Diagnostics: s.diagnostics(snap.Diagnostics(), nil)}
	switch {
	case err != nil:
		out.Error = "the file is written, but the reload did not complete: " + err.Error()
	case res.Err != nil:
		out.Generation, out.Changed = res.Generation, res.Changed
		out.Error = res.Err.Error()
	default:
		out.Generation, out.Success, out.Changed = res.Generation, true, res.Changed
	}
	return out
}

// AuditEntry is a write in the audit log.
type AuditEntry struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	UserID     string    `json:"user_id"`
	Action     string    `json:"action"`
	Path       string    `json:"path"`
	FromPath   string    `json:"from_path"`
	HashBefore string    `json:"hash_before"`
	HashAfter  string    `json:"hash_after"`
	TraceID    string    `json:"trace_id"`
}

// Audits lists the last limit writes, newest first.
func (s *Service) Audits(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := s.audit.EditorAudits(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = AuditEntry{ID: r.ID, At: r.At.UTC(), Actor: r.Actor, UserID: r.UserID, Action: r.Action, Path: r.Path, FromPath: r.FromPath,
			HashBefore: r.HashBefore, HashAfter: r.HashAfter, TraceID: r.TraceID}
	}
	return out, nil
}
