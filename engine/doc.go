// Package engine turns a loaded spec folder into a running platform. It compiles a
// spec.Set into an immutable Snapshot, swaps snapshots atomically when the folder
// changes, and runs agents and teams against the snapshot a run started with.
//
// Reloading is owned by one goroutine (Engine.Run). File watchers, SIGHUP and the
// HTTP API only trigger it; bursts coalesce so at most one reload runs and at most
// one waits. A document with errors never replaces its last good version: the old
// version keeps serving and is reported as stale, so one broken file never takes
// down the rest of the folder.
package engine
