package store_test

import (
	"context"
	"testing"

	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// budgetRun opens a run's tracker over a per-user daily budget and a shared
// pot, as an agent referencing both does at run start.
func budgetRun(b *testing.B, db *store.DB) context.Context {
	cost, tokens := 1e6, 1<<40
	policy := budget.Policy{Store: db, Budgets: []*budget.Budget{
		budget.Compile(&spec.Budget{Meta: spec.Meta{Name: "daily-user"}, Per: "user", Period: "day", TimeZone: "UTC", Limits: spec.BudgetLimits{Cost: &cost}}),
		budget.Compile(&spec.Budget{Meta: spec.Meta{Name: "pot"}, Per: "all", Period: "none", TimeZone: "UTC", Limits: spec.BudgetLimits{Tokens: tokens}}),
	}}
	ctx, tr, err := budget.Open(b.Context(), policy, budget.Subject{RunID: "r1", UserID: "alice", Runner: "support"})
	if err != nil || tr == nil {
		b.Fatal(err)
	}
	return ctx
}

// BenchmarkBudgetCheck is what a budget adds before each model call: the
// check reads the counters the run caches, never the database.
func BenchmarkBudgetCheck(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		ctx := budgetRun(b, db)
		b.ReportAllocs()
		for b.Loop() {
			if err := budget.Check(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBudgetCheckNone is the check on a run without budgets.
func BenchmarkBudgetCheckNone(b *testing.B) {
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if budget.Tracking(ctx) {
			b.Fatal("no tracker expected")
		}
	}
}

// BenchmarkBudgetRecord is what a budget adds after each model call: one
// transaction of atomic UPSERT … RETURNING increments (two counters here).
func BenchmarkBudgetRecord(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		ctx := budgetRun(b, db)
		u := budget.Usage{Cost: model.Cost(2_100_000), Tokens: 300}
		b.ReportAllocs()
		for b.Loop() {
			if err := budget.Record(ctx, u); err != nil {
				b.Fatal(err)
			}
		}
	})
}
