package kb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/tool/egress"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/watch"
)

// Keeping sources in sync. Run watches the folders the file sources' globs
// cover and syncs soon after anything in them changes; the timers below are
// the safety nets for what a watch cannot see.
const (
	// RescanInterval is how often Run syncs every knowledge base's sources
	// in full whatever the watcher reported: a change on a filesystem that
	// delivers no events (some network mounts) is picked up within this
	// long. The watcher itself also re-fingerprints the watched folders
	// (names, sizes and modification times) every watchRescan.
	RescanInterval = time.Minute

	// watchDebounce folds the events of one save, or of a copy of many
	// files, into one sync.
	watchDebounce = 200 * time.Millisecond

	// watchRescan is how often the watcher stats the watched folders to
	// catch events it missed.
	watchRescan = 5 * time.Second

	// refreshTick is how often Run looks for URL sources whose refresh
	// interval has passed; a check costs no I/O unless one is due.
	refreshTick = time.Second

	// failedRetry bounds the wait before a URL source whose fetch failed is
	// fetched again: its refresh interval when shorter, else this. Without
	// a wait, a failing source was due on every refreshTick and fetched
	// every second; with the full interval, a page down for a moment would
	// stay missing for hours.
	failedRetry = time.Minute
)

// SyncResult counts what a sync of a knowledge base's sources did.
type SyncResult struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Deleted   int `json:"deleted"`
	Unchanged int `json:"unchanged"`
	// Failed counts sources that could not be read or fetched this time;
	// their documents, if any, are kept (see the log for why).
	Failed int `json:"failed"`
}

// scope says what a sync looks at.
type scope int

const (
	// scopeAll syncs the file sources, fetches URL sources never fetched
	// and those whose refresh interval has passed.
	scopeAll scope = iota
	// scopeDueURLs fetches only the URL sources whose refresh is due.
	scopeDueURLs
	// scopeForce syncs the file sources and fetches every URL source
	// (conditionally, so an unchanged page costs one 304).
	scopeForce
)

// fetchState is what is known of a URL source's last fetch: the validators
// for a conditional GET, and when it was fetched. It is cached in memory and
// persisted through Options.Fetches when set; without it, the first refresh
// after a restart fetches in full, and the content hash still keeps an
// unchanged page from being ingested again.
type fetchState struct {
	etag, lastModified string
	at                 time.Time
	// failed is when the last fetch failed, zero after a success; kept in
	// memory only (a restart tries again at once).
	failed time.Time
}

// retrying reports whether a fetch failed too recently to try again now:
// see failedRetry.
func (st fetchState) retrying(now time.Time, refresh time.Duration) bool {
	wait := failedRetry
	if refresh > 0 {
		wait = min(refresh, failedRetry)
	}
	return !st.failed.IsZero() && now.Sub(st.failed) < wait
}

// Sync syncs one knowledge base's sources now, fetching every URL source
// (conditionally), and says what changed. Syncs of the service are
// serialized, so a forced sync and the run loop's never race.
func (s *Service) Sync(ctx context.Context, id string) (SyncResult, error) {
	s.mu.RLock()
	b, ok := s.bases[id]
	s.mu.RUnlock()
	if !ok {
		return SyncResult{}, fmt.Errorf("knowledge base %q: %w", id, knowledge.ErrNotFound)
	}
	res, err := s.syncBase(ctx, b.spec, scopeForce)
	if err != nil {
		return res, fmt.Errorf("syncing the sources of %s: %w", id, err)
	}
	return res, nil
}

// refreshURLs fetches the URL sources whose refresh interval has passed.
func (s *Service) refreshURLs(ctx context.Context) {
	for _, k := range s.Bases() {
		if k.Refresh <= 0 || !s.urlDue(ctx, k) {
			continue
		}
		if _, err := s.syncBase(ctx, k, scopeDueURLs); err != nil && ctx.Err() == nil {
			s.log.Warn("refreshing knowledge sources", "knowledge", k.Name, "err", err)
		}
	}
}

// urlDue reports whether one of a base's URL sources is due for a refresh.
func (s *Service) urlDue(ctx context.Context, k *spec.Knowledge) bool {
	now := s.opts.Now()
	for _, src := range k.Sources {
		if !spec.IsURLSource(src) {
			continue
		}
		if st := s.fetchStateOf(ctx, k.Name, src); now.Sub(st.at) >= k.Refresh.D() && !st.retrying(now, k.Refresh.D()) {
			return true
		}
	}
	return false
}

func fetchKey(knowledgeID, url string) string { return knowledgeID + "\x00" + url }

// fetchStateOf returns what is known of a URL source's last fetch, reading
// the base's from Options.Fetches the first time.
func (s *Service) fetchStateOf(ctx context.Context, knowledgeID, url string) fetchState {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if s.opts.Fetches != nil && !s.loaded[knowledgeID] {
		stored, err := s.opts.Fetches.SourceFetches(ctx, knowledgeID)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("loading what URL sources answered last; fetching them in full", "knowledge", knowledgeID, "err", err)
			}
		} else {
			if s.loaded == nil {
				s.loaded = map[string]bool{}
			}
			s.loaded[knowledgeID] = true
			for u, f := range stored {
				if _, ok := s.fetched[fetchKey(knowledgeID, u)]; !ok {
					s.setFetchLocked(knowledgeID, u, fetchState{etag: f.ETag, lastModified: f.LastModified, at: f.FetchedAt})
				}
			}
		}
	}
	return s.fetched[fetchKey(knowledgeID, url)]
}

// setFetchState records a URL source's fetch, in memory and in Fetches.
func (s *Service) setFetchState(ctx context.Context, knowledgeID, url string, st fetchState) {
	s.fetchMu.Lock()
	s.setFetchLocked(knowledgeID, url, st)
	s.fetchMu.Unlock()
	if s.opts.Fetches == nil {
		return
	}
	err := s.opts.Fetches.SaveSourceFetch(ctx, knowledge.SourceFetch{KnowledgeID: knowledgeID, URL: url, ETag: st.etag, LastModified: st.lastModified, FetchedAt: st.at.UTC()})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("recording what a URL source answered", "knowledge", knowledgeID, "url", url, "err", err)
	}
}

// fetchFailed records, in memory, that fetching a URL source failed at now,
// keeping its validators and last success.
func (s *Service) fetchFailed(knowledgeID, url string, now time.Time) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	st := s.fetched[fetchKey(knowledgeID, url)]
	st.failed = now
	s.setFetchLocked(knowledgeID, url, st)
}

func (s *Service) setFetchLocked(knowledgeID, url string, st fetchState) {
	if s.fetched == nil {
		s.fetched = map[string]fetchState{}
	}
	s.fetched[fetchKey(knowledgeID, url)] = st
}

// syncURL fetches one URL source if sc says so and submits what changed.
func (s *Service) syncURL(ctx context.Context, k *spec.Knowledge, src string, sc scope, existing map[string]knowledge.Document, res *SyncResult) {
	key := "url:" + src
	_, has := existing[key]
	st := s.fetchStateOf(ctx, k.Name, src)
	now := s.opts.Now()
	due := sc == scopeForce || ((!has || (k.Refresh > 0 && now.Sub(st.at) >= k.Refresh.D())) && !st.retrying(now, k.Refresh.D()))
	if !due {
		res.Unchanged++
		return
	}
	if !has {
		// Validators of a page whose document is gone would answer 304
		// for content this base no longer holds.
		st = fetchState{}
	}
	data, name, next, err := s.fetch(ctx, s.clientFor(k), k.Name, src, st)
	if err != nil {
		res.Failed++
		if ctx.Err() == nil {
			s.log.Warn("fetching knowledge source", "knowledge", k.Name, "url", src, "err", err)
			s.fetchFailed(k.Name, src, now)
		}
		return
	}
	next.at = now
	s.setFetchState(ctx, k.Name, src, next)
	if data == nil {
		res.Unchanged++ // 304 Not Modified
		return
	}
	s.submitSource(ctx, k, key, name, data, existing, res)
}

// FetchURL downloads a document for an upload into a knowledge base, within
// the size limit, through the egress policy that base allows.
func (s *Service) FetchURL(ctx context.Context, knowledgeID, url string) ([]byte, string, error) {
	s.mu.RLock()
	b, ok := s.bases[knowledgeID]
	s.mu.RUnlock()
	if !ok {
		return nil, "", fmt.Errorf("knowledge base %q: %w", knowledgeID, knowledge.ErrNotFound)
	}
	data, name, _, err := s.fetch(ctx, s.clientFor(b.spec), knowledgeID, url, fetchState{})
	return data, name, err
}

// clientFor returns the HTTP client for a base's URLs: one whose egress
// policy lets the base's allowed_hosts through, when it lists any.
func (s *Service) clientFor(k *spec.Knowledge) *http.Client {
	if len(k.AllowedHosts) == 0 || s.opts.HostsClient == nil {
		return s.opts.HTTPClient
	}
	key := strings.Join(k.AllowedHosts, "\x00")
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if c, ok := s.clients[key]; ok {
		return c
	}
	if s.clients == nil {
		s.clients = map[string]*http.Client{}
	}
	c := s.opts.HostsClient(slices.Clone(k.AllowedHosts))
	s.clients[key] = c
	return c
}

// fetch GETs url, conditionally when cond holds validators; a 304 returns
// nil data and cond as the next state.
func (s *Service) fetch(ctx context.Context, client *http.Client, knowledgeID, url string, cond fetchState) ([]byte, string, fetchState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", cond, fmt.Errorf("invalid URL %q: %w", url, err)
	}
	if cond.etag != "" {
		req.Header.Set("If-None-Match", cond.etag)
	}
	if cond.lastModified != "" {
		req.Header.Set("If-Modified-Since", cond.lastModified)
	}
	resp, err := client.Do(req)
	if err != nil {
		var refused *egress.RefusedError
		if errors.As(err, &refused) {
			return nil, "", cond, &refusedError{err: err, msg: fmt.Sprintf("fetching %s: %s; add %s to allowed_hosts of knowledge %s to permit it",
				url, strings.TrimSuffix(refused.Error(), egress.AllowHint), refused.Host, knowledgeID)}
		}
		return nil, "", cond, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && (cond.etag != "" || cond.lastModified != "") {
		return nil, "", cond, nil
	}
	if resp.StatusCode/100 != 2 {
		return nil, "", cond, fmt.Errorf("fetching %s: HTTP %d", url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxBytes+1))
	if err != nil {
		return nil, "", cond, fmt.Errorf("fetching %s: %w", url, err)
	}
	if int64(len(data)) > s.opts.MaxBytes {
		return nil, "", cond, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, url, s.opts.MaxBytes)
	}
	name := filepath.Base(req.URL.Path)
	if name == "/" || name == "." || name == "" {
		name = req.URL.Host
	}
	return data, name, fetchState{etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}, nil
}

// refusedError is a fetch the egress policy refused, with a message naming
// the knowledge base's allowed_hosts field that would permit it.
type refusedError struct {
	msg string
	err error
}

func (e *refusedError) Error() string { return e.msg }
func (e *refusedError) Unwrap() error { return e.err }

// watcher is Run's watch of the folders the file sources cover.
type watcher struct {
	key    string // what it watches; a configuration with the same key keeps it
	c      <-chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// stop stops the watch and waits for its goroutine.
func (w *watcher) stop() {
	if w == nil {
		return
	}
	w.cancel()
	<-w.done
}

// changes returns the channel the watch signals on; nil (never ready) when
// nothing is watched.
func (w *watcher) changes() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.c
}

// rewatch returns a watch of the folders the configured file sources cover:
// cur if they did not change, else a new one (cur stopped). Only folders
// inside a base's read roots are watched.
func (s *Service) rewatch(ctx context.Context, cur *watcher) *watcher {
	dirs, patterns := s.watchTargets()
	key := strings.Join(dirs, "\x00") + "\x01" + strings.Join(patterns, "\x00")
	if cur != nil && cur.key == key {
		return cur
	}
	cur.stop()
	if len(dirs) == 0 {
		return nil
	}
	w, err := watch.New(watch.Options{Dirs: dirs, Debounce: watchDebounce, Rescan: watchRescan, Logger: s.log,
		Relevant: func(name string) bool {
			return slices.ContainsFunc(patterns, func(p string) bool { ok, _ := filepath.Match(p, name); return ok })
		}})
	if err != nil {
		s.log.Warn("watching knowledge sources; changes are picked up by the periodic rescan only", "err", err, "rescan", RescanInterval)
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	out := &watcher{key: key, c: w.C(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(out.done)
		if err := w.Run(wctx); err != nil && wctx.Err() == nil {
			s.log.Warn("watching knowledge sources", "err", err)
		}
	}()
	return out
}

// watchTargets returns the folders to watch for the configured file sources
// (sorted) and the file name patterns that matter in them. A glob's folder
// is the part before its first wildcard; one that does not exist yet is
// watched through its nearest existing parent, as long as that stays inside
// the base's read roots: nothing outside them is watched.
func (s *Service) watchTargets() (dirs, patterns []string) {
	for _, k := range s.Bases() {
		specDir := filepath.Dir(k.Pos().File)
		var roots []string
		for _, r := range k.ReadRoots() {
			if abs, err := filepath.Abs(r); err == nil {
				roots = append(roots, realPath(abs))
			}
		}
		for _, src := range k.Sources {
			if spec.IsURLSource(src) || src == "" {
				continue
			}
			full := src
			if !filepath.IsAbs(full) {
				full = filepath.Join(specDir, src)
			}
			full, err := filepath.Abs(full)
			if err != nil {
				continue
			}
			dir := literalDir(full)
			for {
				real := realPath(dir)
				if !slices.ContainsFunc(roots, func(r string) bool { return inside(r, real) }) {
					dir = ""
					break
				}
				if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
					break
				}
				parent := filepath.Dir(dir)
				if parent == dir {
					dir = ""
					break
				}
				dir = parent
			}
			if dir == "" {
				continue
			}
			dirs = append(dirs, dir)
			patterns = append(patterns, filepath.Base(full))
		}
	}
	slices.Sort(dirs)
	slices.Sort(patterns)
	return slices.Compact(dirs), slices.Compact(patterns)
}

// literalDir returns the folder part of a glob before its first wildcard.
func literalDir(glob string) string {
	dir := filepath.Dir(glob)
	for strings.ContainsAny(dir, `*?[\`) {
		dir = filepath.Dir(dir)
	}
	return dir
}

// realPath resolves symlinks in path as far as it exists.
func realPath(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	parent := filepath.Dir(path)
	if parent == path {
		return path
	}
	return filepath.Join(realPath(parent), filepath.Base(path))
}

// inside reports whether path is root or below it.
func inside(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
