package spec

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// DefaultMaxFileSize bounds a spec file; anything larger is almost certainly not
// a hand-written spec.
const DefaultMaxFileSize = 4 << 20

// LoaderOptions configure a Loader.
type LoaderOptions struct {
	Env         Env   // nil means os.LookupEnv
	MaxFileSize int64 // 0 means DefaultMaxFileSize
}

// Loader reads spec folders. It remembers parsed files by content hash, so a
// reload re-parses only the files that changed. A Loader is safe for concurrent
// use, though one reload loop normally owns it.
type Loader struct {
	env     Env
	maxSize int64

	mu    sync.Mutex
	cache map[string]*File // by path; valid while the content hash matches
}

// NewLoader returns a Loader.
func NewLoader(opts LoaderOptions) *Loader {
	l := &Loader{env: opts.Env, maxSize: opts.MaxFileSize, cache: map[string]*File{}}
	if l.env == nil {
		l.env = os.LookupEnv
	}
	if l.maxSize == 0 {
		l.maxSize = DefaultMaxFileSize
	}
	return l
}

// Load reads every spec file under dirs (recursively) and validates them as one
// folder. Problems in the specs are reported in the Set's diagnostics; the error
// is only for a folder that cannot be read at all.
func (l *Loader) Load(dirs ...string) (*Set, error) {
	paths, err := SpecFiles(dirs...)
	if err != nil {
		return nil, err
	}
	files := make([]*File, 0, len(paths))
	l.mu.Lock()
	defer l.mu.Unlock()
	next := make(map[string]*File, len(paths))
	for _, p := range paths {
		f, err := l.loadFile(p)
		if err != nil {
			return nil, err
		}
		next[p] = f
		files = append(files, f)
	}
	l.cache = next // forget deleted files
	return NewSet(files), nil
}

func (l *Loader) loadFile(path string) (*File, error) {
	info, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			// Deleted between listing and reading: treat as an empty file so the
			// reload still completes; the next event will list the folder again.
			return &File{Path: path}, nil
		}
		return nil, fmt.Errorf("reading spec file: %w", err)
	}
	if info.Size() > l.maxSize {
		return &File{Path: path, Size: int(info.Size()), Failed: true, Diagnostics: Diagnostics{{
			Pos: Pos{File: path, Line: 1, Col: 1}, Severity: Error,
			Msg: fmt.Sprintf("file is %d bytes, more than the limit of %d: split it into smaller files", info.Size(), l.maxSize),
		}}}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return &File{Path: path}, nil
		}
		return nil, fmt.Errorf("reading spec file: %w", err)
	}
	if c, ok := l.cache[path]; ok && c.Hash == hashBytes(data) {
		return c, nil
	}
	return ParseFile(path, data, l.env), nil
}

// SpecFiles lists the spec files under dirs, recursively, sorted, skipping hidden
// folders and editor files. A path that is a file is listed as is.
func SpecFiles(dirs ...string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p != dir && os.IsNotExist(err) {
					return nil // vanished while walking
				}
				return err
			}
			if d.IsDir() {
				if p != dir && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if (p == dir || IsSpecFile(d.Name())) && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading spec folder %s: %w", dir, err)
		}
	}
	return out, nil
}
