package console

import (
	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/console/editor"
	"github.com/troupehq/troupe/console/ui"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/store"
)

// The server's dependencies are what its route groups need, together: each
// group declares its own (api.Store, ui.Store, ...), and the server asks
// for their union so that one value can be handed to all of them.

// Engine is what the server needs from the engine.
type Engine interface {
	api.Engine
	ui.Engine
	editor.Engine
}

// Store is what the server needs from the session store.
type Store interface {
	api.Store
	ui.Store
	editor.Audit
}

// Knowledge is what the server needs from the knowledge service.
type Knowledge interface {
	api.Knowledge
	ui.Knowledge
}

// Queue is what the server needs from the job engine.
type Queue interface {
	api.Queue
	ui.Queue
}

var (
	_ Queue     = (*jobs.Client)(nil)
	_ Engine    = (*engine.Engine)(nil)
	_ Store     = (*store.DB)(nil)
	_ Knowledge = (*kb.Service)(nil)
)
