//go:build !unix

package editor

// lockDir cannot lock a folder here: writes are serialized within the
// process only.
func lockDir(string) (func(), error) { return nil, errLockUnsupported }
