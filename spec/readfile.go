package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Errors of ReadFile and ReadFileWithin, for callers that turn them into
// diagnostics or skip the file.
var (
	// ErrNotRegular: a FIFO, device, socket or directory. Reading a FIFO
	// blocks until a writer comes (forever, in a reload loop); a device such
	// as /dev/zero never ends.
	ErrNotRegular = errors.New("not a regular file")
	// ErrFileTooLarge: the file grew past the limit while it was read, or
	// was larger to begin with.
	ErrFileTooLarge = errors.New("file larger than the limit")
	// ErrOutsideRoots: the path resolves, after symlinks, outside every
	// folder it may be read from.
	ErrOutsideRoots = errors.New("outside the spec folder and the configured read roots")
)

// ReadFile reads a regular file of at most limit bytes. It never blocks on a
// FIFO and never reads more than limit+1 bytes, whatever the file's size says
// (a size from stat is a promise the file need not keep).
func ReadFile(path string, limit int64) ([]byte, error) {
	// Refuse before opening: opening a device can have effects of its own
	// (a tape rewinds, a watchdog arms).
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, notRegular(path, info.Mode())
	}
	if info.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	// The file may have been swapped since the stat: open without blocking
	// (a FIFO's open waits for a writer otherwise) and check what was opened.
	f, err := os.OpenFile(path, os.O_RDONLY|openNonBlocking, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err = f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, notRegular(path, info.Mode())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(path, limit)
	}
	return data, nil
}

// ReadFileWithin reads a file like ReadFile, only if its resolved path (every
// symlink resolved) lies inside one of roots. It reads the resolved path, so
// a link cannot be followed elsewhere between the check and the read.
func ReadFileWithin(path string, limit int64, roots []string) ([]byte, error) {
	resolved, err := ResolveWithin(path, roots)
	if err != nil {
		return nil, err
	}
	return ReadFile(resolved, limit)
}

// ResolveWithin resolves every symlink of path and returns the resolved path if
// it lies inside one of roots (themselves resolved), or ErrOutsideRoots.
func ResolveWithin(path string, roots []string) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	if resolved, err = filepath.Abs(resolved); err != nil {
		return "", err
	}
	for _, root := range roots {
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue // a root that does not exist holds nothing
		}
		if r, err = filepath.Abs(r); err == nil && contains(r, resolved) {
			return resolved, nil
		}
	}
	return "", &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("resolves to %s, %w: move the file into the folder or add its folder to the read roots (--read-roots, TROUPE_READ_ROOTS)", resolved, ErrOutsideRoots)}
}

// The errors below are *fs.PathError, like the os package's: callers that
// already show the path (a diagnostic's position) print only their Err.

func notRegular(path string, m fs.FileMode) error {
	return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%s, %w", fileKind(m), ErrNotRegular)}
}

func tooLarge(path string, limit int64) error {
	return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w of %d bytes", ErrFileTooLarge, limit)}
}

// contains reports whether path is root or below it; both are clean and
// absolute.
func contains(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// fileKind names a non-regular file's type for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return "type " + m.Type().String()
	}
}
