package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
)

// BenchmarkWrite writes batches of 1,000 spans (125 realistic traces of 8
// spans) and reports spans per second stored in ClickHouse.
//
//	TROUPE_TEST_CLICKHOUSE_ADDR=127.0.0.1:9000 go test -run '^$' -bench Write ./telemetry/clickhouse/
func BenchmarkWrite(b *testing.B) {
	s := openStore(b, testOptions(b))
	ctx := context.Background()

	const batchSize = 1000
	start := time.Now().Add(-time.Hour)
	batches := make([][]telemetry.Span, 16)
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
}
