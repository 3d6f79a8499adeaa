package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// defaultMaxOpenConns is the PostgreSQL pool size when Options leave it unset.
const defaultMaxOpenConns = 16

func openPostgres(ctx context.Context, dsn string, opts Options) (*DB, error) {
	// Parsing first reports a malformed URL as such (pgx redacts the password
	// in its errors) instead of as a failed connection.
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: parsing postgres dsn: %w", err)
	}
	sqldb := stdlib.OpenDB(*cfg)
	n := opts.MaxOpenConns
	if n <= 0 {
		n = defaultMaxOpenConns
	}
	sqldb.SetMaxOpenConns(n)
	// database/sql keeps only 2 idle connections by default, which under load
	// means closing and re-dialling connections (and re-preparing statements)
	// constantly; keep the whole pool and let idle time shrink it.
	sqldb.SetMaxIdleConns(n)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("store: connecting to postgres %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	return &DB{
		dialect: DialectPostgres,
		w:       sqldb,
		r:       sqldb,
		bun:     bun.NewDB(sqldb, pgdialect.New()),
	}, nil
}

// PostgreSQL runs StartRun and FinishRun as one statement each, with
// data-modifying CTEs: a single statement is atomic without BEGIN and COMMIT
// and costs one network round trip, where the portable transaction (kept for
// SQLite, which runs in-process and has no data-modifying CTEs) costs four.
const (
	// $1..$8 are the session's columns and $9..$27 the run's, in runColumns
	// order then replica_id; the run's are cast because INSERT ... SELECT does not infer
	// parameter types from the target columns.
	//
	// cur is the session: the one just inserted, or the existing one. The run
	// is inserted only when cur belongs to the same user and component; the
	// caller tells the cases apart from the returned row.
	sqlStartRunPostgres = `WITH ins AS (
		INSERT INTO sessions (id, type, component_id, user_id, name, state, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO NOTHING
		RETURNING type, component_id, user_id, name, state, created_at, updated_at
	), cur AS (
		SELECT true AS created, type, component_id, user_id, name, state, created_at, updated_at FROM ins
		UNION ALL
		SELECT false, type, component_id, user_id, name, state, created_at, updated_at
		FROM sessions WHERE id = $1 AND NOT EXISTS (SELECT FROM ins)
	), run AS (
		INSERT INTO runs (` + runColumns + `, replica_id)
		SELECT $9::text, $10::text, $11::text, $12::text, $13::text, $14::text, $15::text, $16::text, $17::text,
			$18::text, $19::json, $20::json, $21::json, $22::text, $23::text, $24::text, $25::timestamptz, $26::timestamptz, $27::text
		FROM cur WHERE cur.type = $2 AND cur.component_id = $3 AND cur.user_id = $4
	)
	SELECT created, type, component_id, user_id, name, state, created_at, updated_at FROM cur`
)

// sqlFinishRunPostgres takes sqlFinishRun's arguments and stores the latency
// the same way; the session's updated_at only moves forward, as in
// sqlTouchSession.
var sqlFinishRunPostgres = `WITH ` + sqlFinishRunPostgresCTE + `
	SELECT COUNT(*) FROM r`

// sqlFinishRunWithEventsPostgres is sqlFinishRunPostgres that also stores
// the run's last batch of events ($21 first index, $22 last, $23 the JSON),
// in the same statement. The events go in only when the run
// exists (a deleted session took it): the caller then gets ErrNotFound
// rather than a foreign-key error.
var sqlFinishRunWithEventsPostgres = `WITH ` + sqlFinishRunPostgresCTE + `, ev AS (
		INSERT INTO run_events (run_id, idx, last_idx, events)
		SELECT $13, $21::int, $22::int, $23::text
		WHERE EXISTS (SELECT 1 FROM runs WHERE id = $13)` + sqlEventsUpsert + `
	)
	SELECT COUNT(*) FROM r`

var sqlFinishRunPostgresCTE = `r AS (
		UPDATE runs SET content = $1, status = $2, error = $3, tools = $4, messages = $5, metrics = $6,
			model = $7, provider = $8, updated_at = $9, refs = $10,
			latency_us = CASE WHEN created_at = $11::timestamptz THEN $12::bigint
				ELSE ` + postgresLatencyUS("$9::timestamptz", "created_at") + ` END,
			partial = $14, input = COALESCE($15::text, input), cost = $16, tokens = $17, cost_unknown = $18, reasoning = $19,
			history_tokens = $20
		WHERE id = $13
		RETURNING session_id
	), s AS (
		UPDATE sessions SET updated_at = $9
		WHERE id = (SELECT session_id FROM r) AND updated_at < $9
	)`
