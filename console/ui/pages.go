package ui

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// userFilter restricts store reads to the caller's user when its key is bound
// to one; console pages never widen it.
func userFilter(c *gin.Context) store.Filter {
	return store.Filter{UserID: auth.Of(c).UserID("")}
}

func viewDiagnostics(ds spec.Diagnostics) []view.Diagnostic {
	out := make([]view.Diagnostic, len(ds))
	for i, d := range ds {
		out[i] = view.Diagnostic{Severity: d.Severity.String(), Text: d.Error()}
	}
	return out
}

func (h *Handler) reloadView(snap *engine.Snapshot) view.Reload {
	out := view.Reload{Generation: snap.Generation(), Version: snap.Version()}
	if r := h.opts.Engine.LastReload(); r != nil {
		out.Time, out.Duration = r.Time, r.Duration
		if r.Err != nil {
			out.Error = r.Err.Error()
		}
	}
	return out
}

// notServing lists the diagnostics of objects that are broken or stale, and of
// files that do not parse.
func notServing(snap *engine.Snapshot, kinds ...spec.Kind) []view.Diagnostic {
	var out []view.Diagnostic
	for _, o := range snap.Objects() {
		if o.Status == engine.StatusOK || (len(kinds) > 0 && !slices.Contains(kinds, o.Key.Kind)) {
			continue
		}
		out = append(out, viewDiagnostics(o.Diagnostics.Errors())...)
	}
	if len(kinds) == 0 {
		for _, f := range snap.Files() {
			if f.Failed {
				out = append(out, viewDiagnostics(f.Diagnostics)...)
			}
		}
	}
	return out
}

const activityWindow, activityBuckets = time.Hour, 30

func (h *Handler) overviewPage(c *gin.Context) {
	ctx := c.Request.Context()
	snap := h.opts.Engine.Current()
	o := view.Overview{Reload: h.reloadView(snap), Dirs: h.opts.Engine.Dirs(), Broken: notServing(snap)}
	counts := snap.Counts()
	for _, k := range spec.Kinds {
		if n, ok := counts[k]; ok {
			o.Counts = append(o.Counts, view.KindCount{Kind: string(k), OK: n[engine.StatusOK], Stale: n[engine.StatusStale], Broken: n[engine.StatusBroken]})
		}
	}
	if auth.Of(c).Has(auth.ScopeSessionsRead) {
		var err error
		f := userFilter(c)
		if o.Recent, err = h.opts.Store.RecentRuns(ctx, 10, f); err != nil {
			h.fail(c, "recent runs", err)
			return
		}
		now := time.Now()
		if o.Activity, err = h.opts.Store.RunActivity(ctx, now.Add(-activityWindow), now, activityBuckets, f); err != nil {
			h.fail(c, "run activity", err)
			return
		}
		today := utcDay(now)
		total, err := h.opts.Store.SpendTotal(ctx, today, today.AddDate(0, 0, 1), f)
		if err != nil {
			h.fail(c, "today's spend", err)
			return
		}
		o.Today = &total
	}
	h.render(c, http.StatusOK, view.OverviewPage(h.frame(c, "Overview", "overview"), o))
}

// viewAgent and viewTeam describe a target as the API does (its Agent and
// Team), in the console's terms.
func viewAgent(snap *engine.Snapshot, a *engine.Agent) view.Target {
	t := view.Target{Kind: "agent", Name: a.Name(), Description: a.Spec.Description, Status: targetStatus(snap, spec.KindAgent, a.Name()),
		Knowledge: []string{}}
	t.Model, t.Demo = viewModel(a.Model)
	for _, tool := range a.Tools {
		t.Tools = append(t.Tools, tool.Name)
	}
	for _, k := range a.Knowledge {
		t.Knowledge = append(t.Knowledge, k.Name)
	}
	return t
}

func viewTeam(snap *engine.Snapshot, tm *engine.Team) view.Target {
	t := view.Target{Kind: "team", Name: tm.Name(), Description: tm.Spec.Description, Status: targetStatus(snap, spec.KindTeam, tm.Name()), Mode: tm.Spec.Mode}
	t.Model, t.Demo = viewModel(tm.Model)
	for _, m := range tm.Members {
		t.Members = append(t.Members, view.Member{Kind: m.Kind(), Name: m.Name()})
	}
	return t
}

// targetStatus is a served target's status: ok, or stale when an edit
// broke it and its last good version serves.
func targetStatus(snap *engine.Snapshot, kind spec.Kind, name string) string {
	if o, ok := snap.Object(spec.Key{Kind: kind, Name: name}); ok {
		return string(o.Status)
	}
	return string(engine.StatusOK)
}

// viewModel names a target's model and tells whether it is the offline
// demo model, whose answers are not a language model's.
func viewModel(r *engine.ModelRef) (name string, demo bool) {
	return r.Ref, r.Provider == spec.EchoModel
}

// viewTarget describes the agent or team name; false when it is not served.
func viewTarget(snap *engine.Snapshot, kind spec.Kind, name string) (view.Target, bool) {
	if kind == spec.KindTeam {
		tm, ok := snap.Team(name)
		if !ok {
			return view.Target{}, false
		}
		return viewTeam(snap, tm), true
	}
	a, ok := snap.Agent(name)
	if !ok {
		return view.Target{}, false
	}
	return viewAgent(snap, a), true
}

func (h *Handler) targetsPage(c *gin.Context) {
	snap := h.opts.Engine.Current()
	var p view.Targets
	for _, a := range snap.Agents() {
		p.Agents = append(p.Agents, viewAgent(snap, a))
	}
	for _, tm := range snap.Teams() {
		p.Teams = append(p.Teams, viewTeam(snap, tm))
	}
	p.Broken = notServing(snap, spec.KindAgent, spec.KindTeam)
	h.render(c, http.StatusOK, view.TargetsPage(h.frame(c, "Agents & teams", "agents"), p))
}

func (h *Handler) targetPage(typ string) gin.HandlerFunc {
	kind := kindOf(typ)
	return func(c *gin.Context) {
		snap := h.opts.Engine.Current()
		name := c.Param("id")
		t, ok := viewTarget(snap, kind, name)
		o, found := snap.Object(spec.Key{Kind: kind, Name: name})
		if !ok {
			hint := "See Agents & teams for what is served."
			if found && !o.Serving() {
				hint = "Its spec has errors and no earlier version works: see Config. " + o.Diagnostics.Errors().Error()
			}
			h.Problem(c, http.StatusNotFound, typ+" "+name+" is not served", "No "+typ+" named "+name+" is being served.", hint)
			return
		}
		p := view.TargetPage{Target: t, CanRun: auth.Of(c).Has(auth.ScopeAgentsRun), Files: h.opts.Files != nil}
		if found {
			p.File = o.File
			p.Edit = h.editURL(c, o.File)
			p.Diagnostics = viewDiagnostics(o.Diagnostics)
			if o.Doc != nil {
				yaml, err := spec.Resolved(o.Doc)
				if err != nil {
					h.fail(c, "the spec", err)
					return
				}
				p.YAML = yaml
			}
		}
		p.Endpoints = h.endpoints(c, t)
		if id := c.Query("session"); id != "" && auth.Of(c).Has(auth.ScopeSessionsRead) {
			sess, err := h.opts.Store.GetSession(c.Request.Context(), id, userFilter(c))
			if err != nil || sess.ComponentID != name || sess.Type != typ {
				h.Problem(c, http.StatusNotFound, "Session not found", "There is no session "+id+" of "+typ+" "+name+" you can see.", "Start a new session instead.")
				return
			}
			runs, omitted, err := h.opts.Store.LatestRuns(c.Request.Context(), id, userFilter(c), maxChatRuns)
			if err != nil {
				h.fail(c, "the session", err)
				return
			}
			p.SessionID, p.Omitted = id, omitted
			h.withFiles(c, id, runs)
			for _, r := range runs {
				if r.ParentRunID == "" {
					p.Transcript = append(p.Transcript, r)
				}
			}
		}
		h.render(c, http.StatusOK, view.TargetDetail(h.frame(c, name, "agents"), p))
	}
}

// pageParam is a page's "page" parameter; console links are forgiving, so
// a missing or invalid one means the first page.
func pageParam(c *gin.Context) int {
	page, err := strconv.Atoi(c.Query("page"))
	if err != nil || page < 1 || page > 1<<30 {
		return 1
	}
	return page
}

// pageCount is how many pages of limit items total items fill.
func pageCount(total, limit int) int { return (total + limit - 1) / limit }

// Pages show the latest runs of long sessions, to stay small.
const maxPageRuns, maxChatRuns = 50, 20

// endpoints documents a target's API routes with curl commands against the
// address the browser used.
func (h *Handler) endpoints(c *gin.Context, t view.Target) []view.Endpoint {
	base := api.BaseURL(c.Request)
	auth := ""
	if h.opts.Keys.Len() > 0 {
		auth = ` \` + "\n  -H \"Authorization: Bearer $TROUPE_API_KEY\""
	}
	path := "/" + t.Kind + "s/" + t.Name + "/runs"
	return []view.Endpoint{
		{Method: "POST", Path: path, Description: "run it; streams server-sent events (stream=false for one JSON answer)",
			Curl: "curl -N " + base + path + auth + ` \` + "\n  -F message='Hello' -F stream=true"},
		{Method: "POST", Path: "/v1/chat/completions", Description: "OpenAI-compatible, with the " + t.Kind + " name as the model",
			Curl: "curl " + base + "/v1/chat/completions" + auth + ` \` + "\n  -H 'Content-Type: application/json' \\\n  -d '{\"model\": \"" + t.Name + "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"},
		{Method: "GET", Path: "/sessions?component_id=" + t.Name, Description: "its sessions",
			Curl: "curl '" + base + "/sessions?type=" + t.Kind + "&component_id=" + t.Name + "'" + auth},
	}
}

func (h *Handler) sessionsPage(c *gin.Context) {
	q := store.SessionQuery{Filter: userFilter(c), Search: strings.TrimSpace(c.Query("q")), Page: pageParam(c), Limit: store.DefaultLimit}
	rows, total, err := h.opts.Store.ListSessions(c.Request.Context(), q)
	if err != nil {
		h.fail(c, "sessions", err)
		return
	}
	p := view.Sessions{Search: q.Search, Rows: rows, Page: q.Page, Total: total, TotalPages: pageCount(total, q.Limit),
		CanWrite: auth.Of(c).Has(auth.ScopeSessionsWrite)}
	h.render(c, http.StatusOK, view.SessionsPage(h.frame(c, "Sessions", "sessions"), p))
}

func (h *Handler) sessionPage(c *gin.Context) {
	ctx := c.Request.Context()
	sess, err := h.opts.Store.GetSession(ctx, c.Param("id"), userFilter(c))
	if err != nil {
		h.fail(c, "the session", err)
		return
	}
	runs, omitted, err := h.opts.Store.LatestRuns(ctx, sess.ID, userFilter(c), maxPageRuns)
	if err != nil {
		h.fail(c, "the session's runs", err)
		return
	}
	h.withFiles(c, sess.ID, runs)
	p := view.SessionPage{Session: *sess, Members: map[string][]store.Run{}, CanWrite: auth.Of(c).Has(auth.ScopeSessionsWrite), Traces: h.opts.Traces != nil,
		Omitted: omitted}
	for _, r := range runs {
		if r.ParentRunID == "" {
			p.Runs = append(p.Runs, r)
		} else {
			p.Members[r.ParentRunID] = append(p.Members[r.ParentRunID], r)
		}
	}
	h.render(c, http.StatusOK, view.SessionDetail(h.frame(c, cmp.Or(sess.Name, "Session"), "sessions"), p))
}

// withFiles fills in the files sent with the runs of session id, which
// the pages show under each message. A failure to read them costs the
// page its attachments, not the conversation.
func (h *Handler) withFiles(c *gin.Context, id string, runs []store.Run) {
	if h.opts.Files == nil {
		return
	}
	fs, err := h.opts.Store.SessionFiles(c.Request.Context(), id, userFilter(c))
	if err != nil {
		h.log.Warn("listing a session's files", "session_id", id, "err", err)
		return
	}
	byRun := map[string][]store.RunFile{}
	for _, f := range fs {
		byRun[f.RunID] = append(byRun[f.RunID], f)
	}
	for i := range runs {
		runs[i].Files = byRun[runs[i].ID]
	}
}

// sessionFile serves a file sent with a run of the session to whoever may
// read the session (image thumbnails and download links on the pages).
func (h *Handler) sessionFile(c *gin.Context) {
	if h.opts.Files == nil {
		h.Problem(c, http.StatusNotFound, "File not found", "This server keeps no run files.", "")
		return
	}
	rf, err := h.opts.Store.GetRunFile(c.Request.Context(), c.Param("id"), c.Param("file_id"), userFilter(c))
	if err == nil {
		err = api.ServeFile(c, h.opts.Files, rf)
	}
	if err != nil {
		h.fail(c, "the file", err)
	}
}

func (h *Handler) renameFromConsole(c *gin.Context) {
	name, err := api.CheckSessionName(c.PostForm("name"))
	if err != nil {
		h.fail(c, "the session", err)
		return
	}
	if _, err := h.opts.Store.RenameSession(c.Request.Context(), c.Param("id"), name, userFilter(c)); err != nil {
		h.fail(c, "the session", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/sessions/"+c.Param("id"))
}

func (h *Handler) deleteFromConsole(c *gin.Context) {
	if err := api.DeleteSession(c.Request.Context(), h.opts.Runs, h.opts.Store, c.Param("id"), userFilter(c)); err != nil {
		h.fail(c, "the session", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/sessions")
}

func (h *Handler) runTrace(c *gin.Context) {
	if h.tracingOff(c) {
		return
	}
	traces, _, err := h.opts.Traces.ListTraces(c.Request.Context(), telemetry.TraceQuery{RunID: c.Param("run_id"), UserID: auth.Of(c).UserID(""), Limit: 1, Page: 1})
	if err != nil {
		h.fail(c, "the trace", err)
		return
	}
	if len(traces) == 0 {
		h.Problem(c, http.StatusNotFound, "No trace yet", "No trace of run "+c.Param("run_id")+" has been stored.", "Traces are written within a second or two of a run's end; reload this page shortly.")
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/traces/"+traces[0].TraceID)
}

func (h *Handler) tracesPage(c *gin.Context) {
	p := view.Traces{Enabled: h.opts.Traces != nil, Filter: view.TraceFilter{Target: c.Query("target"), Status: c.Query("status"), Since: c.Query("since")}}
	if !p.Enabled {
		h.render(c, http.StatusOK, view.TracesPage(h.frame(c, "Traces", "traces"), p))
		return
	}
	snap := h.opts.Engine.Current()
	for _, a := range snap.Agents() {
		p.Targets = append(p.Targets, a.Name())
	}
	for _, t := range snap.Teams() {
		p.Targets = append(p.Targets, t.Name())
	}
	slices.Sort(p.Targets)
	q := telemetry.TraceQuery{UserID: auth.Of(c).UserID(""), Limit: 25, Page: pageParam(c)}
	if t := p.Filter.Target; t != "" {
		if _, isTeam := snap.Team(t); isTeam {
			q.TeamID = t
		} else {
			q.AgentID = t
		}
	}
	if p.Filter.Status == telemetry.StatusOK || p.Filter.Status == telemetry.StatusError {
		q.Status = p.Filter.Status
	}
	for _, w := range view.TraceWindows {
		if w.Name == p.Filter.Since {
			q.StartTime = time.Now().Add(-w.Span)
		}
	}
	rows, total, err := h.opts.Traces.ListTraces(c.Request.Context(), q)
	if err != nil {
		h.fail(c, "traces", err)
		return
	}
	p.Rows, p.Page, p.Total, p.TotalPages = rows, q.Page, total, pageCount(total, q.Limit)
	h.render(c, http.StatusOK, view.TracesPage(h.frame(c, "Traces", "traces"), p))
}

func (h *Handler) tracePage(c *gin.Context) {
	if h.tracingOff(c) {
		return
	}
	spans, found, err := api.LoadTrace(c.Request.Context(), h.opts.Traces, auth.Of(c), c.Param("trace_id"))
	if err != nil {
		h.fail(c, "the trace", err)
		return
	}
	if !found {
		h.Problem(c, http.StatusNotFound, "Trace not found", "There is no trace "+c.Param("trace_id")+" you can see.", "Traces are written within a second or two of a run's end.")
		return
	}
	p := waterfall(api.NewTraceTree(c.Param("trace_id"), spans))
	h.render(c, http.StatusOK, view.TraceDetail(h.frame(c, "Trace "+p.Summary.Name, "traces"), p))
}

// tracingOff answers with an explanation when the server records no traces.
func (h *Handler) tracingOff(c *gin.Context) bool {
	if h.opts.Traces != nil {
		return false
	}
	h.Problem(c, http.StatusNotFound, "Tracing is off", "This server does not record traces.", "Start it with TROUPE_TRACES=sql.")
	return true
}

// waterfallBudget bounds the HTML of a trace page's rows, to keep the page
// under the console's 100 KB: a row costs about 700 bytes, plus its
// attributes and error, counted twice for escaping (JSON arguments are full
// of quotes). The first spans that fit are shown; the JSON API has them all.
const waterfallBudget = 85_000

// rowCost estimates the HTML bytes of a span's waterfall row.
func rowCost(sp telemetry.Span) int {
	n := len(sp.StatusMessage)
	for k, v := range sp.Attributes {
		n += len(k) + len(v)
	}
	return 700 + 2*n
}

// waterfall lists the spans depth-first under their parents, each bar scaled
// to the whole trace.
func waterfall(t api.TraceTree) view.TracePage {
	p := view.TracePage{Summary: t.Summary}
	start, end := t.Spans[0].Start, t.Spans[0].End
	for _, sp := range t.Spans {
		if sp.Start.Before(start) {
			start = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
	}
	total := float64(max(end.Sub(start), 1))
	used := 0
	anchors := map[string]bool{}
	var walk func(i, depth int)
	walk = func(i, depth int) {
		sp := t.Spans[i]
		if used += rowCost(sp); used > waterfallBudget {
			return
		}
		row := view.SpanRow{Span: sp, Depth: depth,
			Offset: 100 * float64(sp.Start.Sub(start)) / total, Width: 100 * float64(sp.Duration()) / total}
		row.Conversation = conversation(sp.Attributes)
		for _, k := range slices.Sorted(maps.Keys(sp.Attributes)) {
			if row.Conversation != nil && conversationAttrs[k] {
				continue // shown as the conversation
			}
			row.Attributes = append(row.Attributes, [2]string{k, sp.Attributes[k]})
		}
		if name := sp.Attributes["troupe.step"]; name != "" && sp.Kind == telemetry.KindStep {
			iteration, _ := strconv.Atoi(sp.Attributes["troupe.iteration"])
			if a := stepAnchor(name, iteration); !anchors[a] {
				anchors[a], row.Anchor = true, a // the first: a nested workflow may reuse the name
			}
		}
		p.Rows = append(p.Rows, row)
		for _, ch := range t.Children[sp.SpanID] {
			walk(ch, depth+1)
		}
	}
	for _, i := range t.Roots {
		walk(i, 0)
	}
	return p
}

func (h *Handler) knowledgePage(c *gin.Context) {
	p := view.Knowledge{Enabled: h.opts.Knowledge != nil, CanWrite: auth.Of(c).Has(auth.ScopeKnowledgeWrite)}
	if p.Enabled {
		ctx := c.Request.Context()
		p.MaxBytes = h.opts.Knowledge.MaxBytes()
		var lag map[string]int64
		if h.opts.KafkaLag != nil {
			lag = h.opts.KafkaLag()
		}
		// One grouped count serves every base's figures; the rows and the
		// total below are counted from the same table, and the page
		// refreshes them together (view.KnowledgePage) whenever a row
		// changes status.
		counts, err := h.opts.Knowledge.Counts(ctx)
		if err != nil {
			h.fail(c, "knowledge bases", err)
			return
		}
		for _, b := range h.opts.Knowledge.Bases() {
			base := view.Base{Name: b.Name, Store: b.Store.Type, Search: b.Search.Mode, Embedder: b.Embedder.String()}
			for _, n := range counts[b.Name] {
				base.Documents += n
			}
			base.Processing, base.Failed = counts[b.Name][knowledge.StatusProcessing], counts[b.Name][knowledge.StatusFailed]
			if b.Kafka != nil {
				base.Kafka = b.Kafka.Topic
				if l, ok := lag[b.Name]; ok {
					base.Lag = &l
				}
			}
			p.Bases = append(p.Bases, base)
		}
		q := knowledge.DocumentQuery{Limit: docsPerPage, Page: pageParam(c), SortBy: "updated_at", SortOrder: "desc"}
		if p.Docs, p.Total, err = h.opts.Knowledge.List(ctx, q); err != nil {
			h.fail(c, "documents", err)
			return
		}
		p.Page, p.Pages = q.Page, pageCount(p.Total, docsPerPage)
	}
	h.render(c, http.StatusOK, view.KnowledgePage(h.frame(c, "Knowledge", "knowledge"), p))
}

const docsPerPage = 50

func (h *Handler) docRow(c *gin.Context) {
	d, err := h.opts.Knowledge.Get(c.Request.Context(), c.Param("id"))
	if errors.Is(err, knowledge.ErrNotFound) {
		c.Data(http.StatusOK, "text/html; charset=utf-8", nil) // deleted: the row goes away
		return
	}
	if err != nil {
		h.fail(c, "the document", err)
		return
	}
	if d.Status != knowledge.StatusProcessing {
		// The row stops polling with this answer: the page's counts,
		// which include its status, are out of date now.
		c.Header("HX-Trigger", "troupe-docs")
	}
	h.render(c, http.StatusOK, view.DocRow(*d, auth.Of(c).Has(auth.ScopeKnowledgeWrite)))
}

func (h *Handler) uploadFromConsole(c *gin.Context) {
	d, err := api.ReadUpload(c, h.opts.Knowledge)
	if err != nil {
		h.fail(c, "the upload", err)
		return
	}
	h.render(c, http.StatusAccepted, view.DocRow(*d, true))
}

func (h *Handler) deleteDocFromConsole(c *gin.Context) {
	if err := h.opts.Knowledge.Delete(c.Request.Context(), c.Param("id")); err != nil && !errors.Is(err, knowledge.ErrNotFound) {
		h.fail(c, "the document", err)
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", nil)
}

func (h *Handler) retryDocFromConsole(c *gin.Context) {
	d, err := h.opts.Knowledge.Retry(c.Request.Context(), c.Param("id"))
	if err != nil {
		h.fail(c, "the document", err)
		return
	}
	h.render(c, http.StatusOK, view.DocRow(*d, true))
}

// syncFromConsole is the knowledge page's "Sync now": it syncs one base's
// sources and answers what changed, and makes the page count again.
func (h *Handler) syncFromConsole(c *gin.Context) {
	name := c.PostForm("knowledge_id")
	r, err := h.opts.Knowledge.Sync(c.Request.Context(), name)
	if err != nil {
		h.fail(c, "the knowledge base", err)
		return
	}
	c.Header("HX-Trigger", "troupe-docs")
	h.render(c, http.StatusOK, view.SyncResult(name, r.Added, r.Updated, r.Deleted, r.Unchanged, r.Failed))
}

func (h *Handler) searchFromConsole(c *gin.Context) {
	r := view.SearchResult{Query: strings.TrimSpace(c.PostForm("query")), Mode: c.PostForm("mode")}
	switch r.Mode {
	case knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid:
	default:
		r.Mode = knowledge.ModeHybrid
	}
	var minScore *float64
	if v := strings.TrimSpace(c.PostForm("min_score")); v != "" {
		m, err := strconv.ParseFloat(v, 64)
		if err != nil || !(m >= 0 && m <= 1) {
			r.Error = "Min score must be a number from 0 to 1."
		}
		minScore = &m
	}
	switch {
	case r.Error != "":
	case r.Query == "":
		r.Error = "Type something to search for."
	default:
		start := time.Now()
		hits, err := h.opts.Knowledge.SearchWith(c.Request.Context(), kb.SearchRequest{
			KnowledgeIDs: api.SearchIDs(h.opts.Knowledge, c.PostForm("knowledge_id")), Query: r.Query, Mode: r.Mode, TopK: 10, MinScore: minScore,
		})
		r.Took = time.Since(start)
		if err != nil {
			// The service's own refusals say what to change; anything
			// else is for the server log, not the page.
			_, msg, ok := api.Status(err)
			if !ok {
				h.log.Error("console search", "err", err)
				msg = "see the server log"
			}
			r.Error = "Search failed: " + msg
		}
		r.Hits = hits
	}
	h.render(c, http.StatusOK, view.SearchResults(r))
}

func (h *Handler) configPage(c *gin.Context) {
	h.renderConfig(c, "")
}

func (h *Handler) renderConfig(c *gin.Context, flash string) {
	snap := h.opts.Engine.Current()
	p := view.Config{Dirs: h.opts.Engine.Dirs(), Reload: h.reloadView(snap), CanAdmin: auth.Of(c).Has(auth.ScopeAdmin), Flash: flash}
	byFile := map[string][]view.ConfigObject{}
	for _, o := range snap.Objects() {
		byFile[o.File] = append(byFile[o.File], view.ConfigObject{Kind: string(o.Key.Kind), Name: o.Key.Name, Status: string(o.Status),
			Generation: o.Generation, Diagnostics: viewDiagnostics(o.Diagnostics)})
	}
	for _, f := range snap.Files() {
		p.Files = append(p.Files, view.ConfigFile{Path: f.Path, Edit: h.editURL(c, f.Path), Size: f.Size, Failed: f.Failed, Diagnostics: viewDiagnostics(f.Diagnostics), Objects: byFile[f.Path]})
	}
	h.render(c, http.StatusOK, view.ConfigPage(h.frame(c, "Config", "config"), p))
}

func (h *Handler) reloadFromConsole(c *gin.Context) {
	res, err := h.opts.Engine.Reload(c.Request.Context())
	flash := ""
	switch {
	case err != nil:
		flash = "Reload did not complete: " + err.Error()
	case res.Success():
		flash = fmt.Sprintf("Reloaded in %s: generation %d.", res.Duration.Round(time.Microsecond), h.opts.Engine.Current().Generation())
	default:
		flash = fmt.Sprintf("Reloaded with %d errors: the documents below keep their last good version.", res.Errors)
	}
	h.renderConfig(c, flash)
}

func (h *Handler) cancelFromConsole(c *gin.Context) {
	ok, err := h.opts.Runs.Cancel(c.Request.Context(), c.Param("run_id"), session.Match{UserID: auth.Of(c).UserID("")})
	if err != nil {
		h.log.Error("cancelling a run", "run_id", c.Param("run_id"), "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("could not cancel the run; see the server log"))
		return
	}
	if !ok {
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("that run is not in progress"))
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("cancelling"))
}

// conversationAttrs are the span attributes a conversation is read from.
var conversationAttrs = map[string]bool{telemetry.SystemInstructionsAttribute: true, telemetry.InputMessagesAttribute: true, telemetry.OutputMessagesAttribute: true}

// genaiMessage is a message of the GenAI message attributes.
type genaiMessage struct {
	Role  string `json:"role"`
	Parts []struct {
		Type      string          `json:"type"`
		Content   string          `json:"content"`
		ID        string          `json:"id"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
		Response  string          `json:"response"`
	} `json:"parts"`
}

// conversation reads a model-request span's GenAI message attributes into
// the messages the trace page shows; nil when it has none (or they do not
// parse: the attributes are then listed as they are).
func conversation(attrs map[string]string) []view.ChatMessage {
	in, out := attrs[telemetry.InputMessagesAttribute], attrs[telemetry.OutputMessagesAttribute]
	if in == "" && out == "" {
		return nil
	}
	var msgs []view.ChatMessage
	if sys := attrs[telemetry.SystemInstructionsAttribute]; sys != "" {
		var parts []struct {
			Content string `json:"content"`
		}
		if json.Unmarshal([]byte(sys), &parts) != nil {
			return nil
		}
		m := view.ChatMessage{Role: "system"}
		for _, p := range parts {
			m.Parts = append(m.Parts, view.ChatPart{Type: "text", Text: p.Content})
		}
		msgs = append(msgs, m)
	}
	for _, src := range []struct {
		json   string
		output bool
	}{{in, false}, {out, true}} {
		if src.json == "" {
			continue
		}
		var gm []genaiMessage
		if json.Unmarshal([]byte(src.json), &gm) != nil {
			return nil
		}
		for _, g := range gm {
			m := view.ChatMessage{Role: g.Role, Output: src.output}
			for _, p := range g.Parts {
				cp := view.ChatPart{Type: p.Type, ID: p.ID, Name: p.Name, Text: p.Content}
				switch p.Type {
				case "tool_call":
					cp.Text = string(p.Arguments)
					if s, err := strconv.Unquote(cp.Text); err == nil {
						cp.Text = s // arguments clipped to a string
					}
				case "tool_call_response":
					cp.Text = p.Response
				}
				m.Parts = append(m.Parts, cp)
			}
			msgs = append(msgs, m)
		}
	}
	return msgs
}
