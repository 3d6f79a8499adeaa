package editor

import (
	"errors"
	"net/http"
	"slices"
	"time"
)

var (
	errLockBusy        = errors.New("the spec folder is locked by another process")
	errLockUnsupported = errors.New("the spec folder's file system cannot be locked")
)

// lockWait bounds how long a write waits for another process's write to
// the same folder; writes take milliseconds, so a longer wait means a stuck
// process.
const lockWait = 5 * time.Second

// lock serializes writes: within the process with mu, and with other
// processes writing the same folders (replicas sharing a volume) with a
// lock on each folder, taken in a fixed order. On a file system that cannot
// lock, writes are serialized within the process only (logged once).
func (s *Service) lock(fs ...folder) (unlock func(), err error) {
	s.mu.Lock()
	dirs := make([]string, 0, len(fs))
	for _, f := range fs {
		dirs = append(dirs, f.dir)
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var unlocks []func()
	release := func() {
		for _, u := range slices.Backward(unlocks) {
			u()
		}
		s.mu.Unlock()
	}
	for _, dir := range dirs {
		deadline := time.Now().Add(lockWait)
		for {
			u, err := lockDir(dir)
			if err == nil {
				unlocks = append(unlocks, u)
				break
			}
			if errors.Is(err, errLockUnsupported) {
				s.warnUnlocked.Do(func() {
					s.log.Warn("the spec folder cannot be locked: saves are serialized within this process only; edit through one replica", "dir", dir)
				})
				break
			}
			if !errors.Is(err, errLockBusy) || time.Now().After(deadline) {
				release()
				return nil, &Error{Status: http.StatusServiceUnavailable, Msg: "another process is writing the spec folder and has not finished: try again in a moment"}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return release, nil
}
