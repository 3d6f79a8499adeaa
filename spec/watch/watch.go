// Package watch tells the owner of a set of YAML spec files when that set may
// have changed, so the server can hot-reload its agent definitions.
//
// The watcher never parses or even reads spec files. It only answers
// "something relevant changed, reload the set" through a coalescing channel
// (see [Watcher.C]); deciding what changed is the loader's job. Extra signals are
// therefore harmless (one needless reload), while a missed signal leaves the
// server running stale definitions, and the design leans accordingly.
//
// # Why directories and not files
//
// Editors and deployment tools seldom modify a spec file in place. Vim, most
// IDEs and config-management tools write a temporary file and rename it over
// the original; Kubernetes ConfigMap volumes swap a symlink. A watch on a file
// (an inode, for inotify) follows the old inode away or dies with it, so
// after the first save nothing would be reported. A watch on the containing
// directory sees the rename land as a Create of the real name and keeps
// working. fsnotify is not recursive, so every subfolder gets its own watch,
// added at start and whenever a new subfolder appears.
//
// # Safety nets
//
// Change notification is lossy: the kernel queue can overflow, a folder can
// be created and filled before its watch is in place, and some filesystems
// (network mounts, some container overlays) deliver no events at all. So the
// watcher also rescans the trees periodically, comparing a cheap fingerprint
// (path, size and modification time of every relevant file, no reads), and
// treats any fsnotify error as "assume everything changed".
package watch

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/troupehq/troupe/spec"
)

const (
	// defaultDebounce is short enough that a save feels instant to whoever
	// edits a spec, and long enough to fold the several events of a single
	// save (truncate, write, close, rename) into one reload.
	defaultDebounce = 50 * time.Millisecond

	// defaultRescan bounds how long a missed event can leave the server
	// stale, while keeping the cost of stat-ing every spec file negligible.
	defaultRescan = 2 * time.Second

	// maxWaitFactor caps the delay of a signal at maxWaitFactor×Debounce
	// after the first unsignalled event. Without the cap a steady trickle of
	// writes (a log file accidentally named *.yaml, a slow copy) would
	// postpone the reload forever.
	maxWaitFactor = 4

	// queueSize is how many fsnotify notifications may wait for Run. If Run
	// falls that far behind, the backlog is dropped and replaced by a full
	// rescan, which is cheaper than processing it anyway.
	queueSize = 1024
)

// Options configures a Watcher.
type Options struct {
	Dirs     []string      // folders to watch recursively (new subfolders too)
	Debounce time.Duration // quiet period before signalling; 0 means 50ms. Must stay <= 100ms by default.
	Rescan   time.Duration // periodic full rescan that catches missed events; 0 means 2s, negative disables
	Logger   *slog.Logger  // nil means discard
	// Relevant reports whether a file with this base name matters to the
	// owner; nil means spec files (.yaml, .yml). The knowledge service
	// watches its sources' folders with the globs' file patterns.
	Relevant func(name string) bool
}

// Watcher watches folder trees of YAML spec files. Create it with [New], run
// it with [Watcher.Run] and receive from [Watcher.C].
//
// New already establishes the watches (so nothing that happens after New
// returns is missed) and therefore holds an inotify instance; Run releases it
// when its context is cancelled, so Run must be called once New succeeded.
type Watcher struct {
	fsw      *fsnotify.Watcher
	roots    []string // absolute, cleaned, none nested inside another
	debounce time.Duration
	rescan   time.Duration // <= 0: periodic rescans disabled
	log      *slog.Logger
	out      chan struct{} // cap 1; see C
	relevant func(name string) bool

	started atomic.Bool

	// queue, overflowed and kick connect the pump goroutine to Run; see pump.
	queue      chan notification
	overflowed atomic.Bool
	kick       chan struct{}

	// The fields below belong to New and then to the goroutine running Run;
	// they are never shared, so they need no lock.
	watched map[string]bool   // directories that have an fsnotify watch
	failed  map[string]string // directories whose watch failed -> error text, to log each failure once
	sum     [sha256.Size]byte // fingerprint at the last rescan
	resync  bool              // an error may have cost us events or watches; rescan before the next signal
}

// notification is one item read from fsnotify: either an event or an error.
type notification struct {
	ev  fsnotify.Event
	err error
}

// New validates options and creates the fsnotify watcher and the watches
// (walking each dir tree). A dir that does not exist is an error wrapped with
// context (errors.Is(err, fs.ErrNotExist) holds).
func New(opts Options) (*Watcher, error) {
	if len(opts.Dirs) == 0 {
		return nil, errors.New("watch: no dirs to watch")
	}
	if opts.Debounce < 0 {
		return nil, fmt.Errorf("watch: negative debounce %v", opts.Debounce)
	}
	roots, err := cleanRoots(opts.Dirs)
	if err != nil {
		return nil, err
	}

	w := &Watcher{
		roots:    roots,
		debounce: orDefault(opts.Debounce, defaultDebounce),
		rescan:   orDefault(opts.Rescan, defaultRescan),
		log:      opts.Logger,
		out:      make(chan struct{}, 1),
		relevant: opts.Relevant,
		queue:    make(chan notification, queueSize),
		kick:     make(chan struct{}, 1),
		watched:  make(map[string]bool),
		failed:   make(map[string]string),
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.relevant == nil {
		w.relevant = isRelevant
	}

	w.fsw, err = fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: create fsnotify watcher: %w", err)
	}
	// The roots are what the caller asked for, so failing to watch one is
	// an error. Problems below a root (an unreadable lost+found on a mounted
	// volume, a folder deleted mid-walk) are only logged: the server should
	// start, and Run keeps retrying those folders on every rescan.
	for _, root := range roots {
		if err := w.fsw.Add(root); err != nil {
			_ = w.fsw.Close()
			return nil, fmt.Errorf("watch: watch dir %q: %w", root, err)
		}
		w.watched[root] = true
	}
	// The baseline fingerprint, which also adds the watches for every
	// subfolder. Taking it after the roots are watched means a change made
	// during the walk is reported by an event even if the walk misses it.
	w.sync()
	return w, nil
}

// orDefault returns v if it is non-zero and def otherwise: the zero value
// of an option means "use the default".
func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// cleanRoots makes the dirs absolute (so event paths and log lines are
// unambiguous), checks that they are existing directories, and drops
// duplicates and dirs nested inside another dir, which the recursive watch of
// the outer one already covers.
func cleanRoots(dirs []string) ([]string, error) {
	var roots []string
	for _, dir := range dirs {
		if dir == "" {
			return nil, errors.New("watch: empty dir name")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("watch: dir %q: %w", dir, err)
		}
		// Stat, not Lstat: a root may be a symlink to a directory.
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("watch: dir %q: %w", dir, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("watch: dir %q: not a directory", dir)
		}
		roots = append(roots, abs)
	}
	slices.Sort(roots)
	roots = slices.Compact(roots)
	return slices.DeleteFunc(roots, func(r string) bool {
		return slices.ContainsFunc(roots, func(outer string) bool {
			return outer != r && within(outer, r)
		})
	}), nil
}

// within reports whether path is dir itself or lies below it.
func within(dir, path string) bool {
	if path == dir {
		return true
	}
	prefix := dir
	if !strings.HasSuffix(prefix, string(filepath.Separator)) { // only "/" has one
		prefix += string(filepath.Separator)
	}
	return strings.HasPrefix(path, prefix)
}

// C returns a channel with buffer 1 that receives a value when relevant files
// changed. Bursts coalesce: many events within the debounce window produce
// one signal; if the owner is slow, at most one signal is pending (latest
// wins, never blocks the watcher).
//
// A signal means "reload the whole set", not "this file changed"; the owner
// should reload after receiving, so that every change made before the signal
// is seen.
func (w *Watcher) C() <-chan struct{} { return w.out }

// signal makes a signal pending unless one already is. Signals carry no
// data, so an already pending one stands for this one too.
func (w *Watcher) signal() {
	select {
	case w.out <- struct{}{}:
	default:
	}
}

// Run processes events until ctx is cancelled, then closes the fsnotify
// watcher, drains its Events/Errors channels and returns nil (or a real
// error if watching failed fatally). Run must be called exactly once; all
// goroutines it starts stop before it returns.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("watch: Run called more than once")
	}

	pumpDone := make(chan struct{})
	go w.pump(pumpDone)

	deb := newDebouncer(w.debounce)
	defer deb.timer.Stop()

	var tick <-chan time.Time // nil (never ready) when rescans are disabled
	if w.rescan > 0 {
		t := time.NewTicker(w.rescan)
		defer t.Stop()
		tick = t.C
	}

	for {
		select {
		case <-ctx.Done():
			return w.shutdown(pumpDone, nil)

		case <-pumpDone:
			// fsnotify closes its channels only when closed, and only Run
			// closes it: its backend died. Without events the owner would
			// silently run stale specs, so this is worth failing loudly.
			return w.shutdown(pumpDone, errors.New("watch: fsnotify stopped delivering events"))

		case n := <-w.queue:
			if n.err != nil {
				// Typically fsnotify.ErrEventOverflow: events were lost,
				// maybe including the creation of a folder we now don't
				// watch. Signal, and rescan first so those folders get
				// their watches.
				w.log.Warn("watch: fsnotify error; rescanning", "err", n.err)
				w.resync = true
				deb.poke(time.Now())
			} else if w.handle(n.ev) {
				w.log.Debug("watch: change", "event", n.ev.String())
				deb.poke(time.Now())
			}

		case <-w.kick:
			if w.overflowed.Swap(false) {
				w.log.Warn("watch: event backlog overflowed; rescanning")
				w.resync = true
				deb.poke(time.Now())
			}

		case <-tick:
			if w.sync() {
				w.log.Debug("watch: rescan found changes")
				deb.poke(time.Now())
			}

		case <-deb.timer.C:
			deb.fired()
			// With rescans on, refresh the baseline now: every change up
			// to here is covered by the signal we are about to send, so
			// the next periodic rescan must not report it again. That
			// also serves a pending resync.
			if w.rescan > 0 || w.resync {
				w.sync()
				w.resync = false
			}
			w.signal()
		}
	}
}

// pump moves notifications from fsnotify to Run through a bounded queue and
// never blocks on Run. This matters for correctness, not just throughput:
// fsnotify's inotify reader may send on Errors while holding the lock that
// Watcher.Add and Watcher.Remove need, so if Run, busy adding a watch, were
// also the only receiver, both would wait for each other forever. When the
// queue is full the overflow is flagged instead (Run then rescans), just like
// a kernel queue overflow.
//
// pump returns, closing done, once fsnotify has closed both channels, which
// happens after Close; until then it keeps draining them.
func (w *Watcher) pump(done chan<- struct{}) {
	defer close(done)
	events, errs := w.fsw.Events, w.fsw.Errors
	for events != nil || errs != nil {
		var n notification
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			n.ev = ev
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			n.err = err
		}
		select {
		case w.queue <- n:
		default:
			w.overflowed.Store(true)
			select {
			case w.kick <- struct{}{}:
			default: // Run has been kicked already
			}
		}
	}
}

// shutdown closes fsnotify and waits for the pump to drain its channels.
func (w *Watcher) shutdown(pumpDone <-chan struct{}, err error) error {
	if cerr := w.fsw.Close(); cerr != nil {
		// Nothing the caller could do about it; the watches die with the
		// inotify descriptor regardless.
		w.log.Warn("watch: closing fsnotify watcher", "err", cerr)
	}
	<-pumpDone
	return err
}

// handle updates the watches for one event and reports whether the event
// means the spec set may have changed.
func (w *Watcher) handle(ev fsnotify.Event) bool {
	// A Chmod alone (chmod, touch -a, indexers and virus scanners poking at
	// files) does not change what the loader would read.
	if ev.Op&^fsnotify.Chmod == 0 {
		return false
	}
	name := filepath.Base(ev.Name)

	if ev.Has(fsnotify.Create) {
		// Lstat: a symlinked folder is not descended into (see walk).
		if fi, err := os.Lstat(ev.Name); err == nil {
			switch {
			case fi.IsDir():
				if isHidden(name) {
					return false
				}
				// The folder may have been filled (mkdir -p, mv, tar x)
				// before its watch exists, so walk it now and signal;
				// anything written after the walk produces events.
				w.addTree(ev.Name)
				return true
			case fi.Mode()&fs.ModeSymlink != 0 && isDirLink(ev.Name):
				// A directory symlink swapped into place, as Kubernetes
				// does with "..data" when a ConfigMap changes: every
				// spec behind it may be new, even though the name is
				// hidden and no spec file itself was touched.
				return true
			}
		}
	}

	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		// A removed or renamed-away folder takes its specs with it.
		if w.forget(ev.Name) {
			return true
		}
	}

	return w.relevant(name)
}

// isDirLink reports whether the symlink at path points to a directory.
func isDirLink(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// addTree watches dir and every folder below it.
func (w *Watcher) addTree(dir string) {
	err := walk(dir, w.addWatch, nil)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.log.Warn("watch: walking new folder", "dir", dir, "err", err)
	}
}

// addWatch adds an fsnotify watch for dir. Failures are logged once per
// folder and error, not on every rescan that retries them.
func (w *Watcher) addWatch(dir string) {
	if w.watched[dir] {
		return
	}
	if err := w.fsw.Add(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return // deleted again already; nothing to watch
		}
		if msg := err.Error(); w.failed[dir] != msg {
			w.failed[dir] = msg
			// The periodic rescan still covers this folder's files, just
			// with rescan latency instead of debounce latency.
			w.log.Warn("watch: cannot watch folder; relying on rescans", "dir", dir, "err", err)
		}
		return
	}
	delete(w.failed, dir)
	w.watched[dir] = true
	if slices.Contains(w.roots, dir) {
		w.log.Info("watch: watching dir again", "dir", dir)
	} else {
		w.log.Debug("watch: watching folder", "dir", dir)
	}
}

// forget drops the watches of path and every folder below it, after path
// was removed or renamed, and reports whether path was a watched folder.
//
// Removing the watches explicitly matters for renames: the kernel watch
// follows the moved inode, so without this a folder moved out of the tree
// would keep reporting, and one moved within it would be watched twice.
// Errors are ignored: the kernel usually dropped the watch already.
func (w *Watcher) forget(path string) bool {
	if !w.watched[path] {
		return false
	}
	for dir := range w.watched {
		if within(path, dir) {
			w.unwatch(dir)
		}
	}
	return true
}

// unwatch removes the watch for dir and our record of it.
func (w *Watcher) unwatch(dir string) {
	_ = w.fsw.Remove(dir)
	delete(w.watched, dir)
	delete(w.failed, dir)
	if slices.Contains(w.roots, dir) {
		// Typically a volume being remounted or a deploy replacing the
		// folder; sync re-adds the watch once the folder is back.
		w.log.Warn("watch: watched dir disappeared", "dir", dir)
	}
}

// sync rescans the trees: it brings the watches in line with the folders
// that exist (adding missing ones, dropping vanished ones) and reports
// whether the fingerprint of the relevant files changed since the last sync.
func (w *Watcher) sync() (changed bool) {
	s := fingerprint(w.roots, w.relevant)
	if s.err != nil {
		// Unreadable folders are reported by addWatch when it matters;
		// here they would repeat every rescan.
		w.log.Debug("watch: rescan", "err", s.err)
	}
	seen := make(map[string]bool, len(s.dirs))
	for _, dir := range s.dirs {
		seen[dir] = true
		w.addWatch(dir)
	}
	for dir := range w.watched {
		if !seen[dir] {
			w.unwatch(dir)
		}
	}
	changed = s.sum != w.sum
	w.sum = s.sum
	return changed
}

// scan is the result of fingerprint.
type scan struct {
	sum   [sha256.Size]byte // over path, size and mtime of every relevant file
	dirs  []string          // every folder that could be listed, roots included; these get watches
	files int               // number of relevant files
	err   error             // folders that could not be read, for logging
}

// fingerprint walks the trees under roots and hashes path, size and
// modification time (ns) of every relevant file. It never opens a file, so
// it costs one stat per file and one readdir per folder. Two fingerprints
// differ when a relevant file was added, removed, renamed, resized or
// rewritten (with an mtime change, which every write makes on the local
// filesystems we care about).
func fingerprint(roots []string, isRelevant func(name string) bool) scan {
	var s scan
	h := sha256.New()
	var buf []byte
	record := func(path string) {
		// Stat, not Lstat: for a symlinked spec (a Kubernetes ConfigMap
		// volume has nothing else) the target is what the loader reads,
		// and a swapped target must change the fingerprint.
		size, mtime := int64(-1), int64(0) // dangling link or vanished: still count the name
		if fi, err := os.Stat(path); err == nil {
			if fi.IsDir() {
				return
			}
			size, mtime = fi.Size(), fi.ModTime().UnixNano()
		}
		s.files++
		buf = append(buf[:0], path...)
		buf = append(buf, 0) // separator; cannot occur in a path
		buf = binary.LittleEndian.AppendUint64(buf, uint64(size))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(mtime))
		h.Write(buf)
	}
	var errs []error
	for _, root := range roots {
		err := walk(root, nil, func(dir string, entries []fs.DirEntry) {
			s.dirs = append(s.dirs, dir)
			for _, e := range entries {
				if !e.IsDir() && isRelevant(e.Name()) {
					record(filepath.Join(dir, e.Name()))
				}
			}
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	h.Sum(s.sum[:0])
	s.err = errors.Join(errs...)
	return s
}

// walk visits root and every folder below it in a deterministic (lexical)
// order. For each folder it calls enter (if not nil) before listing the
// folder, so that a watch added there also covers entries created while the
// walk is under way, and visit (if not nil) with the entries once the folder
// was listed successfully.
//
// Hidden folders (.git, .idea, ...) are skipped: they hold no specs and can
// be large and busy. Symlinked folders below root are not followed, which
// rules out cycles; root itself may be a symlink. Folders that vanish during
// the walk are skipped silently; other errors are returned joined.
func walk(root string, enter func(dir string), visit func(dir string, entries []fs.DirEntry)) error {
	if enter != nil {
		enter(root)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	if visit != nil {
		visit(root, entries)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || isHidden(e.Name()) {
			continue
		}
		err := walk(filepath.Join(root, e.Name()), enter, visit)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isRelevant reports whether a file with this name can be a spec, by the
// loader's own rule (spec.IsSpecFile), except that the extension is matched
// case-insensitively because a needless reload is cheap and a missed one is
// not. Editor swap, backup and temporary files (.swp, ~, .tmp, vim's 4913
// probe) never end in .yaml or .yml, so opening a spec in an editor causes
// no reload.
func isRelevant(name string) bool {
	ext := filepath.Ext(name)
	return spec.IsSpecFile(strings.TrimSuffix(name, ext) + strings.ToLower(ext))
}

// isHidden reports whether a folder is hidden and thus not watched.
func isHidden(name string) bool { return strings.HasPrefix(name, ".") }

// debouncer decides when Run sends a signal: once no relevant event arrived
// for the quiet period, but no later than maxWait after the first event that
// has not been signalled yet.
type debouncer struct {
	quiet, maxWait time.Duration
	timer          *time.Timer
	first          time.Time // zero when nothing is pending
}

func newDebouncer(quiet time.Duration) *debouncer {
	t := time.NewTimer(time.Hour)
	t.Stop() // armed by the first poke
	return &debouncer{quiet: quiet, maxWait: maxWaitFactor * quiet, timer: t}
}

// poke records a relevant event at now and re-arms the timer. Since Go 1.23
// Reset discards a value a stopped or expired timer may still have buffered,
// so no stale tick can fire early.
func (d *debouncer) poke(now time.Time) {
	if d.first.IsZero() {
		d.first = now
	}
	d.timer.Reset(debounceDelay(d.first, now, d.quiet, d.maxWait))
}

// fired records that the timer fired and the pending events are signalled.
func (d *debouncer) fired() { d.first = time.Time{} }

// debounceDelay returns how long to wait, at now, before signalling events
// of which the first unsignalled one arrived at first: the quiet period, cut
// short so that no more than maxWait passes after first.
func debounceDelay(first, now time.Time, quiet, maxWait time.Duration) time.Duration {
	return max(min(quiet, maxWait-now.Sub(first)), 0)
}
