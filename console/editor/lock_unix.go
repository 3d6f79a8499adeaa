//go:build unix

package editor

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on a spec folder shared with other
// processes (replicas on one volume), so that two of them never both pass a
// hash check and then both write. flock on the folder itself, not on a lock
// file, so that nothing appears in the user's folder. It fails with
// errLockBusy while another process holds the lock, and errLockUnsupported
// where the file system cannot lock a folder (some network file systems).
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, errLockUnsupported
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return func() {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			_ = f.Close()
		}, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		_ = f.Close()
		return nil, errLockBusy
	default:
		_ = f.Close()
		return nil, errLockUnsupported
	}
}
