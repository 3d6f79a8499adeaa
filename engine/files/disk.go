package files

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// ErrNotFound is returned (wrapped) by Get for a key with no stored bytes.
var ErrNotFound = errors.New("file not found")

// Store keeps the bytes of run files by key. Keys are made by NewKey: a
// Store may rely on them being short, unique and made of [a-z0-9/]. The
// methods are safe for concurrent use; the caller closes what Get returns.
// Disk is the default; an S3-compatible bucket can implement the same
// three calls.
type Store interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes key; a key that is already gone is not an error.
	Delete(ctx context.Context, key string) error
}

// Disk is a Store in a directory: one file per key.
type Disk struct {
	root string
}

var _ Store = (*Disk)(nil)

// NewDisk returns a Store under root, which it creates if needed.
func NewDisk(root string) (*Disk, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("creating the run files directory %s: %w", root, err)
	}
	return &Disk{root: root}, nil
}

// validKey is what NewKey makes: checked so no key can leave the root.
var validKey = regexp.MustCompile(`^[a-z0-9]{2}/[a-z0-9]{8,64}$`)

func (d *Disk) path(key string) (string, error) {
	if !validKey.MatchString(key) {
		return "", fmt.Errorf("run file key %q is not one Troupe makes", key)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put writes data under key through a synced temporary file and a rename,
// so a crash never leaves half a file under a key.
func (d *Disk) Put(_ context.Context, key string, data []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("storing run file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return fmt.Errorf("storing run file: %w", err)
	}
	// Synced before the rename: the run's row names the file once this
	// returns, and a power loss must not leave it empty under its name.
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("storing run file: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("storing run file: %w", err)
	}
	return nil
}

// Get opens the bytes stored under key.
func (d *Disk) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run file %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading run file: %w", err)
	}
	return f, nil
}

// Delete removes the bytes under key.
func (d *Disk) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting run file: %w", err)
	}
	return nil
}

// NewKey returns a new storage key: random, so two runs that send the same
// bytes keep separate copies and deleting one session never removes
// another's file.
func NewKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	h := hex.EncodeToString(b)
	return h[:2] + "/" + h
}
