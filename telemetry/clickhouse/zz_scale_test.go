package clickhouse

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/troupehq/troupe/telemetry"
)

func TestZZScale(t *testing.T) {
	if os.Getenv("TROUPE_SCALE") == "" {
		t.Skip()
	}
	o := Options{Addr: serverAddr(t), Database: "troupe_scale_scratch"}
	s := openStore(t, o)
	ctx := ctxT(t)
	base := time.Now().Add(-7 * 24 * time.Hour)
	var batch []telemetry.Span
	t0 := time.Now()
	for i := 0; i < 125000; i++ {
		batch = append(batch, buildTrace(traceSpec{RunID: fmt.Sprintf("run-%d", i), SessionID: fmt.Sprintf("s-%d", i/10), UserID: fmt.Sprintf("u-%d", i%100), AgentID: "a", Start: base.Add(time.Duration(i) * 4 * time.Second), Input: "hello"})...)
		if len(batch) >= 8000 {
			if err := s.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	t.Logf("load: %v", time.Since(t0))
	for _, q := range []telemetry.TraceQuery{{}, {UserID: "u-7"}, {RunID: "run-777"}, {SessionID: "s-5"}, {StartTime: base.Add(24 * time.Hour), EndTime: base.Add(25 * time.Hour)}, {Page: 50}} {
		t0 := time.Now()
		l, total, err := s.ListTraces(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v: %d/%d in %v", q, len(l), total, time.Since(t0))
	}
	t0 = time.Now()
	l, _, _ := s.ListTraces(ctx, telemetry.TraceQuery{RunID: "run-777"})
	sp, err := s.GetTrace(ctx, l[0].TraceID)
	t.Logf("get: %d %v %v", len(sp), err, time.Since(t0))
}
