package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
)

// BenchmarkWrite writes batches of 1,000 and of 10,000 spans (realistic
// traces of 8 spans) and reports spans per second stored in ClickHouse. An
// insert has a large fixed cost on the server (it allocates buffers and
// writes a part per insert), so the recorder writes larger batches when it
// falls behind (telemetry.RecorderOptions.MaxBatchSize).
//
//	TROUPE_TEST_CLICKHOUSE_ADDR=127.0.0.1:9000 go test -run '^$' -bench Write ./telemetry/clickhouse/
func BenchmarkWrite(b *testing.B) {
	for _, batchSize := range []int{1000, 10_000} {
		b.Run(fmt.Sprint("batch=", batchSize), func(b *testing.B) {
			s := openStore(b, testOptions(b))
			ctx := context.Background()
			start := time.Now().Add(-time.Hour)
			batches := make([][]telemetry.Span, 4)
			for i := range batches {
				for len(batches[i]) < batchSize {
					batches[i] = append(batches[i], buildTrace(traceSpec{
						RunID: fmt.Sprintf("run-%d-%d", i, len(batches[i])), SessionID: "bench-session", UserID: "bench-user",
						AgentID: "bench-agent", Start: start, Input: "summarise the quarterly report and draft a reply to the customer",
					})...)
				}
				batches[i] = batches[i][:batchSize]
			}

			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				if err := s.Write(ctx, batches[n%len(batches)]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			elapsed := b.Elapsed()
			b.ReportMetric(float64(n*batchSize)/elapsed.Seconds(), "spans/s")

			b.StopTimer()
			var stored uint64
			require.NoError(b, s.queryRow(ctx, []any{&stored}, "SELECT count() FROM "+s.table))
			require.GreaterOrEqual(b, stored, uint64(n*batchSize))
		})
	}
}

// BenchmarkGetTrace reads one trace back from a table of 1,000,000 spans
// written over the past 10 days, the newest and the oldest day's, with the
// table of trace starts (see traceStartTable) and without it, as for traces
// written before it existed.
//
//	TROUPE_TEST_CLICKHOUSE_ADDR=127.0.0.1:9000 go test -run '^$' -bench GetTrace -benchtime 20x ./telemetry/clickhouse/
func BenchmarkGetTrace(b *testing.B) {
	s := openStore(b, testOptions(b))
	ctx := context.Background()
	const days, batchesPerDay, perBatch = 10, 10, 10_000
	now := time.Now().UTC()
	var ids []string // the first trace of each day
	for d := range days {
		for batch := range batchesPerDay {
			var spans []telemetry.Span
			for len(spans) < perBatch {
				at := now.Add(-time.Duration(days-d)*24*time.Hour + time.Duration(batch*perBatch+len(spans))*time.Millisecond)
				spans = append(spans, buildTrace(traceSpec{RunID: "r", AgentID: "a", Start: at, Input: "q"})...)
			}
			require.NoError(b, s.Write(ctx, spans))
			if batch == 0 {
				ids = append(ids, spans[0].TraceID)
			}
		}
	}
	var stored uint64
	require.NoError(b, s.queryRow(ctx, []any{&stored}, "SELECT count() FROM "+s.table))
	b.Logf("%d spans stored", stored)
	require.NoError(b, s.exec(ctx, "OPTIMIZE TABLE "+s.table+" FINAL"))
	for _, bc := range []struct {
		name, id string
		starts   bool
	}{
		{"newest", ids[len(ids)-1], true},
		{"oldest", ids[0], true},
		{"newest/no-starts", ids[len(ids)-1], false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if !bc.starts {
				require.NoError(b, s.exec(ctx, "DROP TABLE "+s.startsView))
				require.NoError(b, s.exec(ctx, "TRUNCATE TABLE "+s.starts))
			}
			for b.Loop() {
				spans, err := s.GetTrace(ctx, bc.id)
				if err != nil {
					b.Fatal(err)
				}
				if len(spans) == 0 {
					b.Fatal("trace not found")
				}
			}
		})
	}
}
