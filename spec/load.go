package spec

import (
	"errors"
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
	// ReadRoots are folders besides the spec folders that spec files (by
	// symlink) and knowledge sources may be read from.
	ReadRoots []string
	// BuiltinTools are the tools the engine provides by name, from its tool
	// registry (engine.Tools.Builtins). Without them every tool an agent
	// lists needs a Tool document.
	BuiltinTools []BuiltinTool
	// ApproverScopes are the API key scopes approval policies may name
	// (the server's auth scopes); empty accepts any resource:verb.
	ApproverScopes []string
}

// Loader reads spec folders. It remembers parsed files by content hash, so a
// reload re-parses only the files that changed. A Loader is safe for concurrent
// use, though one reload loop normally owns it.
type Loader struct {
	env      Env
	maxSize  int64
	roots    []string
	builtins []BuiltinTool
	scopes   []string

	mu    sync.Mutex
	cache map[string]*File // by path; valid while the content hash matches
}

// NewLoader returns a Loader.
func NewLoader(opts LoaderOptions) *Loader {
	l := &Loader{env: opts.Env, maxSize: opts.MaxFileSize, roots: opts.ReadRoots, builtins: opts.BuiltinTools, scopes: opts.ApproverScopes, cache: map[string]*File{}}
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
//
// A spec file must be a regular file, at most MaxFileSize bytes, and, once its
// symlinks are resolved, inside the folder it was found in or a read root:
// links within the folder are how Kubernetes mounts a ConfigMap (x.yaml →
// ..data/x.yaml), while a link out of it would let whoever can write the
// folder read any file the server can. A file named on the command line is
// the operator's own choice and is read wherever it resolves.
func (l *Loader) Load(dirs ...string) (*Set, error) {
	return l.load(dirs, nil, true)
}

// LoadOverlay validates dirs as Load does, with the contents of overlay (by
// path, as Load lists them: the folder joined with the file's relative path)
// in place of those files on disk, or added to the folder when they are not
// on it. It is how an editor checks a buffer before saving it: the same
// parser, options and cross-file validation as the reload that follows a
// save. It reuses parsed files but never changes what the Loader
// remembers, so it does not disturb the reload loop.
func (l *Loader) LoadOverlay(overlay map[string][]byte, dirs ...string) (*Set, error) {
	return l.load(dirs, overlay, false)
}

// load is Load and LoadOverlay: the files under dirs, overlay's contents in
// place of (or besides) those on disk, parsed files reused from the cache.
// remember makes what was read the cache, forgetting deleted files.
func (l *Loader) load(dirs []string, overlay map[string][]byte, remember bool) (*Set, error) {
	listed, err := specFiles(dirs...)
	if err != nil {
		return nil, err
	}
	if len(overlay) > 0 {
		seen := make(map[string]bool, len(listed))
		for _, sf := range listed {
			seen[sf.path] = true
		}
		for path := range overlay {
			if !seen[path] {
				listed = append(listed, specFile{path: path, root: rootOf(path, dirs)})
			}
		}
	}
	files := make([]*File, 0, len(listed))
	l.mu.Lock()
	defer l.mu.Unlock()
	next := make(map[string]*File, len(listed))
	for _, sf := range listed {
		var f *File
		if data, ok := overlay[sf.path]; ok {
			f = l.parse(sf, data)
		} else if f, err = l.loadFile(sf); err != nil {
			return nil, err
		}
		next[sf.path] = f
		files = append(files, f)
	}
	if remember {
		l.cache = next
	}
	return NewSetWith(files, SetOptions{Builtins: l.builtins, ApproverScopes: l.scopes}), nil
}

// rootOf is the folder of dirs that path lies in, "" for none.
func rootOf(path string, dirs []string) string {
	for _, d := range dirs {
		if contains(filepath.Clean(d), filepath.Clean(path)) {
			return d
		}
	}
	return ""
}

func (l *Loader) loadFile(sf specFile) (*File, error) {
	path := sf.path
	var data []byte
	var err error
	if sf.root == "" {
		data, err = ReadFile(path, l.maxSize)
	} else {
		data, err = ReadFileWithin(path, l.maxSize, append([]string{sf.root}, l.roots...))
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Deleted between listing and reading (or a dangling link): treat
		// as an empty file so the reload still completes; the next event
		// will list the folder again.
		return &File{Path: path}, nil
	case errors.Is(err, ErrFileTooLarge):
		return failedFile(path, fmt.Sprintf("file is larger than the limit of %d bytes: split it into smaller files", l.maxSize)), nil
	case errors.Is(err, ErrNotRegular):
		return failedFile(path, "spec file is "+pathErrText(err)+": only regular files are read"), nil
	case errors.Is(err, ErrOutsideRoots):
		return failedFile(path, "spec file "+pathErrText(err)), nil
	case err != nil:
		return nil, fmt.Errorf("reading spec file: %w", err)
	}
	return l.parse(sf, data), nil
}

// parse parses a spec file's content, or returns the remembered parse of
// the same content. l.mu is held.
func (l *Loader) parse(sf specFile, data []byte) *File {
	path := sf.path
	if c, ok := l.cache[path]; ok && c.Hash == hashBytes(data) {
		return c
	}
	f := ParseFile(path, data, l.env)
	// A knowledge base's file sources may resolve into the folder its file
	// was found in (a file named as is: that file's folder) or a read root.
	root := sf.root
	if root == "" {
		root = filepath.Dir(path)
	}
	roots := append([]string{root}, l.roots...)
	for _, doc := range f.Docs {
		if k, ok := doc.(*Knowledge); ok {
			k.roots = roots
		}
	}
	return f
}

// pathErrText is an error's text without the path a diagnostic's position
// already shows.
func pathErrText(err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// failedFile is a spec file that could not be read, with why.
func failedFile(path, msg string) *File {
	return &File{Path: path, Failed: true, Diagnostics: Diagnostics{{Pos: Pos{File: path, Line: 1, Col: 1}, Severity: Error, Msg: msg}}}
}

// SpecFiles lists the spec files under dirs, recursively, sorted, skipping hidden
// folders and editor files. A path that is a file is listed as is.
func SpecFiles(dirs ...string) ([]string, error) {
	listed, err := specFiles(dirs...)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(listed))
	for i, sf := range listed {
		out[i] = sf.path
	}
	return out, nil
}

// specFile is a listed spec file and the folder it must resolve into ("" for
// a file named as is).
type specFile struct{ path, root string }

func specFiles(dirs ...string) ([]specFile, error) {
	seen := map[string]bool{}
	var out []specFile
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
				root := dir
				if p == dir {
					root = ""
				}
				out = append(out, specFile{path: p, root: root})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading spec folder %s: %w", dir, err)
		}
	}
	return out, nil
}
