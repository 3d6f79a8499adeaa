package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// stmts are the statements prepared once at Open. On SQLite the write ones
// live on the single writer connection, so each run's transactions only bind
// and step them; on PostgreSQL database/sql prepares each lazily per pooled
// connection and the server skips parsing and planning.
type stmts struct {
	// On the write pool. SQLite uses them inside transactions through
	// Tx.StmtContext; PostgreSQL runs startRun and finishRun on their own.
	insertSession       *sql.Stmt // SQLite
	selectSessionForRun *sql.Stmt // SQLite
	insertRun           *sql.Stmt // SQLite
	touchSession        *sql.Stmt // SQLite
	insertEvents        *sql.Stmt // SQLite
	startRun            *sql.Stmt // PostgreSQL
	finishRun           *sql.Stmt
	// SQLite's group commit runs each operation of a batch in a savepoint
	// when it must run the batch again because one of them failed.
	savepoint, releaseSavepoint, rollbackToSavepoint *sql.Stmt

	// On the read pool.
	getSession        *sql.Stmt
	getRun            *sql.Stmt
	listRuns          *sql.Stmt
	latestRuns        *sql.Stmt
	runsPage          *sql.Stmt
	countTopLevelRuns *sql.Stmt
	sessionVisible    *sql.Stmt
	finishedRun       *sql.Stmt
	history           *sql.Stmt
	// A run's recall and summarized history (memories, summaries).
	memoriesByID   *sql.Stmt
	historyAfter   *sql.Stmt
	unfoldedSize   *sql.Stmt
	sessionSummary *sql.Stmt
	// The overview's reads, with and without a user to filter by.
	recentFinished, recentRunning *sql.Stmt
	runActivity, runActivityUser  *sql.Stmt
	runningRuns                   *sql.Stmt

	all []*sql.Stmt
}

type stmtDef struct {
	dst   **sql.Stmt
	pool  *sql.DB
	query string
}

func (db *DB) prepare(ctx context.Context) error {
	defs := []stmtDef{
		{&db.st.getSession, db.r, sqlGetSession},
		{&db.st.getRun, db.r, sqlGetRun},
		{&db.st.listRuns, db.r, sqlListRuns},
		{&db.st.latestRuns, db.r, sqlLatestRuns},
		{&db.st.countTopLevelRuns, db.r, sqlCountTopLevelRuns},
		{&db.st.sessionVisible, db.r, sqlSessionVisible},
		{&db.st.finishedRun, db.r, sqlFinishedRun},
		{&db.st.history, db.r, sqlHistory},
		{&db.st.historyAfter, db.r, sqlHistoryAfter},
		{&db.st.unfoldedSize, db.r, sqlUnfoldedSize},
		{&db.st.sessionSummary, db.r, sqlSessionSummary},
		{&db.st.recentFinished, db.r, sqlRecentFinishedRuns},
		{&db.st.recentRunning, db.r, sqlRecentRunningRuns},
		{&db.st.runningRuns, db.r, sqlRunningRuns},
	}
	if db.dialect == DialectPostgres {
		defs = append(defs,
			stmtDef{&db.st.runActivity, db.r, sqlRunActivityPostgresAll},
			stmtDef{&db.st.runActivityUser, db.r, sqlRunActivityPostgresUser},
			stmtDef{&db.st.startRun, db.w, sqlStartRunPostgres},
			stmtDef{&db.st.finishRun, db.w, sqlFinishRunPostgres},
			stmtDef{&db.st.runsPage, db.r, runsPageSQL(`'infinity'::timestamptz`)},
			stmtDef{&db.st.memoriesByID, db.r, sqlMemoriesByIDPostgres},
		)
	} else {
		defs = append(defs,
			stmtDef{&db.st.runActivity, db.r, sqlRunActivitySQLiteAll},
			stmtDef{&db.st.runActivityUser, db.r, sqlRunActivitySQLiteUser},
			stmtDef{&db.st.insertSession, db.w, sqlInsertSession},
			stmtDef{&db.st.selectSessionForRun, db.w, sqlSelectSessionForRun},
			stmtDef{&db.st.insertRun, db.w, sqlInsertRun},
			stmtDef{&db.st.finishRun, db.w, sqlFinishRun},
			stmtDef{&db.st.touchSession, db.w, sqlTouchSession},
			stmtDef{&db.st.insertEvents, db.w, sqlInsertEvents},
			stmtDef{&db.st.runsPage, db.r, runsPageSQL(`'` + sqliteFarFuture + `'`)},
			stmtDef{&db.st.memoriesByID, db.r, sqlMemoriesByIDSQLite},
			stmtDef{&db.st.savepoint, db.w, `SAVEPOINT op`},
			stmtDef{&db.st.releaseSavepoint, db.w, `RELEASE op`},
			stmtDef{&db.st.rollbackToSavepoint, db.w, `ROLLBACK TO op`},
		)
	}
	for _, d := range defs {
		st, err := d.pool.PrepareContext(ctx, d.query)
		if err != nil {
			return fmt.Errorf("store: preparing %q: %w", d.query, err)
		}
		*d.dst = st
		db.st.all = append(db.st.all, st)
	}
	return nil
}

func (s *stmts) close() error {
	var errs []error
	for _, st := range s.all {
		errs = append(errs, st.Close())
	}
	s.all = nil
	return errors.Join(errs...)
}
