package console

import (
	"context"
	"time"

	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/store"
)

// Engine is what the server needs from the engine.
type Engine interface {
	Current() *engine.Snapshot
	Reload(ctx context.Context) (*engine.ReloadResult, error)
	LastReload() *engine.ReloadResult
	Dirs() []string
	// Subscribe delivers each new snapshot (latest wins) until stop is called.
	Subscribe() (snapshots <-chan *engine.Snapshot, stop func())
}

// Store is what the server needs from the session store: what the API and
// the console need.
type Store interface {
	api.Store
	Dialect() string
	GetSession(ctx context.Context, id string, f store.Filter) (*store.Session, error)
	ListSessions(ctx context.Context, q store.SessionQuery) ([]store.Session, int, error)
	RenameSession(ctx context.Context, id, name string, f store.Filter) (*store.Session, error)
	DeleteSessions(ctx context.Context, ids []string, f store.Filter) (int, error)
	ListRuns(ctx context.Context, sessionID string, f store.Filter) ([]store.Run, error)
	LatestRuns(ctx context.Context, sessionID string, f store.Filter, n int) ([]store.Run, int, error)
	RunsPage(ctx context.Context, sessionID string, f store.Filter, limit, offset int) ([]store.Run, int, error)
	HasFinishedRun(ctx context.Context, sessionID string, f store.Filter) (bool, error)
	DailyMetrics(ctx context.Context, from, to time.Time) ([]store.DailyMetrics, error)
	RecentRuns(ctx context.Context, limit int, f store.Filter) ([]store.Run, error)
	RunActivity(ctx context.Context, from, to time.Time, buckets int, f store.Filter) ([]store.ActivityBucket, error)
	// Ready runs a cheap real query, for the readiness probe.
	Ready(ctx context.Context) error
}

var (
	_ Engine = (*engine.Engine)(nil)
	_ Store  = (*store.DB)(nil)
)

// Knowledge is what the server needs from the knowledge service.
type Knowledge interface {
	api.Knowledge
}
