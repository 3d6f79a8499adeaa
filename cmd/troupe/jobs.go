package main

import (
	"github.com/troupehq/troupe/console/api"
	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/session"
)

// The job engine and the services it runs meet here, through interfaces
// each consumer declares: the knowledge service queues ingestions on the
// job engine and is its ingestion worker; the run service stores
// background runs and executes them; the API queues them.
var (
	_ kb.Queue       = jobs.IngestQueue{}
	_ jobs.Ingester  = (*kb.Service)(nil)
	_ jobs.Executor  = (*session.Service)(nil)
	_ jobs.Submitter = (*session.Service)(nil)
	_ api.Background = (*jobs.RunQueue)(nil)
)
