// Package editor edits the spec files the engine serves, for the console's
// YAML editor and the REST API: it lists, reads, checks, writes, renames and
// deletes files in the spec folders, offers templates for new ones, and
// keeps an audit of every write.
//
// Files stay the source of truth (no copy lives in a database): a save writes
// the file atomically, guarded by the hash of the content the editor loaded,
// and then runs the same reload as any other save. A buffer is checked with
// the reload's own loader and compiler (engine.Check), so the diagnostics an
// editor underlines are the ones the reload would report. Nothing is ever
// read or written outside the spec folders: paths are relative, slash
// separated, free of hidden and parent segments, name .yaml or .yml files,
// and must still resolve inside their folder once symlinks are followed.
package editor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/troupehq/troupe/spec"
)

// folder is a spec folder the editor may write in.
type folder struct {
	// name prefixes the folder's files' paths when there are several
	// folders ("" when there is one).
	name string
	dir  string // as the engine was given it
}

// folders names the engine's spec folders: with one, paths are relative to
// it; with several, a path's first segment is its folder's base name (with
// -2, -3... appended when two folders share one), so that every path names
// one file. A spec "folder" that is a single file is not editable.
func folders(dirs []string) []folder {
	var out []folder
	for _, d := range dirs {
		if info, err := os.Stat(d); err == nil && !info.IsDir() {
			continue
		}
		out = append(out, folder{dir: d})
	}
	if len(out) < 2 {
		return out
	}
	used := map[string]bool{}
	for i := range out {
		base := filepath.Base(filepath.Clean(out[i].dir))
		if base == "." || base == string(filepath.Separator) || strings.HasPrefix(base, ".") {
			base = "specs"
		}
		name := base
		for n := 2; used[name]; n++ {
			name = fmt.Sprintf("%s-%d", base, n)
		}
		used[name] = true
		out[i].name = name
	}
	return out
}

// target is a file a request names, confined to its folder.
type target struct {
	path   string // as the editor names it (slash separated)
	folder folder
	abs    string // the folder joined with the relative path: as the loader lists it
}

// allowedPaths says what a path may be, for 400 answers.
const allowedPaths = "a path is relative to the spec folder, separated by '/', and names a .yaml or .yml file; it may not be absolute, contain '..', '\\', NUL or segments starting with '.', nor lead outside the folder through a symlink"

// resolve checks a path a request names and finds its file. It checks the
// path's shape only; confine checks where it resolves.
func (s *Service) resolve(p string) (target, error) {
	bad := func(why string) (target, error) {
		return target{}, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("path %q is not allowed: %s; %s", p, why, allowedPaths)}
	}
	switch {
	case p == "":
		return bad("it is empty")
	case strings.ContainsRune(p, 0):
		return bad("it contains NUL")
	case strings.Contains(p, `\`):
		return bad(`it contains '\'`)
	case strings.HasPrefix(p, "/") || filepath.IsAbs(p):
		return bad("it is absolute")
	case len(p) > 1024:
		return bad("it is longer than 1024 bytes")
	}
	segs := strings.Split(p, "/")
	for _, seg := range segs {
		switch {
		case seg == "":
			return bad("it has an empty segment")
		case seg == "..":
			return bad("it contains '..'")
		case strings.HasPrefix(seg, "."):
			return bad("it has a segment starting with '.'")
		}
	}
	if ext := path.Ext(p); ext != ".yaml" && ext != ".yml" || !spec.IsSpecFile(segs[len(segs)-1]) {
		return bad("it does not name a .yaml or .yml file")
	}
	if len(s.folders) == 0 {
		return target{}, &Error{Status: http.StatusBadRequest, Msg: "the server has no spec folder to edit: start it with --agents naming a folder"}
	}
	f, rel := s.folders[0], segs
	if len(s.folders) > 1 {
		i := slices.IndexFunc(s.folders, func(f folder) bool { return f.name == segs[0] })
		if i < 0 || len(segs) < 2 {
			names := make([]string, len(s.folders))
			for i, f := range s.folders {
				names[i] = f.name
			}
			return bad("with several spec folders a path starts with one's name: " + strings.Join(names, ", "))
		}
		f, rel = s.folders[i], segs[1:]
	}
	return target{path: p, folder: f, abs: filepath.Join(f.dir, filepath.Join(rel...))}, nil
}

// confine returns the file's resolved path (symlinks followed) when it
// exists, or "" when it does not; either way the path, or its closest
// existing parent, must resolve inside the folder.
func (t target) confine() (resolved string, err error) {
	outside := func() error {
		return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("path %q is not allowed: it resolves outside the spec folder (a symlink leads out of it); %s", t.path, allowedPaths)}
	}
	roots := []string{t.folder.dir}
	for p := t.abs; ; p = filepath.Dir(p) {
		r, err := spec.ResolveWithin(p, roots)
		switch {
		case errors.Is(err, spec.ErrOutsideRoots):
			return "", outside()
		case errors.Is(err, fs.ErrNotExist):
			if p == filepath.Clean(t.folder.dir) || filepath.Dir(p) == p {
				return "", &Error{Status: http.StatusNotFound, Msg: "the spec folder " + t.folder.dir + " does not exist"}
			}
			continue // look at the parent
		case err != nil:
			return "", fmt.Errorf("resolving %s: %w", t.path, err)
		}
		if p != t.abs {
			// A parent exists; it must be a folder for the file to be
			// created in it.
			if info, err := os.Stat(r); err == nil && !info.IsDir() {
				return "", &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("path %q is not allowed: %s is a file, not a folder", t.path, filepath.Base(p))}
			}
			return "", nil
		}
		info, err := os.Stat(r)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", t.path, err)
		}
		if !info.Mode().IsRegular() {
			return "", &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("path %q is not allowed: it is not a regular file", t.path)}
		}
		return r, nil
	}
}

// file is a spec file's content on disk.
type file struct {
	exists   bool
	content  []byte
	hash     string
	mode     fs.FileMode
	size     int64
	modified time.Time
}

// read reads a target's current content; a missing file is !exists.
func (s *Service) read(t target) (file, string, error) {
	resolved, err := t.confine()
	if err != nil || resolved == "" {
		return file{}, "", err
	}
	data, err := spec.ReadFile(resolved, s.maxSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return file{}, "", nil
	case errors.Is(err, spec.ErrFileTooLarge):
		return file{}, "", &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("%s is larger than %d bytes: split it into smaller files", t.path, s.maxSize)}
	case err != nil:
		return file{}, "", fmt.Errorf("reading %s: %w", t.path, err)
	}
	info, err := os.Stat(resolved)
	if err != nil {
		return file{}, "", fmt.Errorf("reading %s: %w", t.path, err)
	}
	return file{exists: true, content: data, hash: hashOf(data), mode: info.Mode().Perm(), size: int64(len(data)), modified: info.ModTime()}, resolved, nil
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// writeAtomic replaces (or creates) the file at path with data: a temporary
// file in the same folder, synced, renamed over it, then the folder synced,
// so that a reader (the watcher's reload) sees the old content or the new,
// never a half-written file, and a crash leaves one of the two. The
// temporary file's name starts with '.' and does not end in .yaml, so the
// loader and the watcher ignore it.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".troupe-edit-*.tmp")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable; where folders cannot be synced
// (some platforms and file systems), the rename stands without it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// mkdirWithin creates t's parent folders, which must stay in its folder.
func mkdirWithin(t target) error {
	if err := os.MkdirAll(filepath.Dir(t.abs), 0o755); err != nil {
		return fmt.Errorf("creating the folder of %s: %w", t.path, err)
	}
	if _, err := spec.ResolveWithin(filepath.Dir(t.abs), []string{t.folder.dir}); err != nil {
		return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("path %q is not allowed: it resolves outside the spec folder", t.path)}
	}
	return nil
}
