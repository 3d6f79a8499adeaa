package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

func TestTmpPlan(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "x.db"))
	tr := db.Traces()
	batch := []telemetry.Span{}
	for i := range 10000 {
		id := fmt.Sprintf("%032x", i*7919)
		st := traceBase.Add(time.Duration(i) * time.Second)
		for j := range 10 {
			s := telemetry.Span{TraceID: id, SpanID: fmt.Sprintf("%016x", j), Start: st.Add(time.Duration(j)), Status: "OK", AgentID: fmt.Sprint("agent", i%20), UserID: fmt.Sprint("user", i%100), RunID: "run" + id, SessionID: fmt.Sprint("s", i/5), Attributes: map[string]string{"a": "b", "input": "hello"}}
			if j > 0 {
				s.ParentID = fmt.Sprintf("%016x", 0)
			}
			batch = append(batch, s)
		}
		if len(batch) >= 1000 {
			if err := tr.Write(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	r := store.ReadDB(db)
	for _, q := range []string{
		`SELECT COUNT(*) FROM spans WHERE is_root = 1`,
		`SELECT COUNT(*) FROM spans WHERE is_root = 1 AND agent_id = 'agent7'`,
		`SELECT COUNT(*) FROM spans WHERE is_root = 1 AND run_id = 'x'`,
		`SELECT COUNT(*) FROM spans WHERE is_root = 1 AND session_id = 's1' AND user_id = 'user1'`,
		`SELECT COUNT(*) FROM spans WHERE is_root = 1 AND start_ns >= 1 AND start_ns <= 2`,
		`WITH page AS (
		SELECT trace_id, span_id, start_ns FROM spans WHERE is_root = 1
		ORDER BY start_ns DESC, trace_id DESC LIMIT 20 OFFSET 0
	)
	SELECT r.trace_id, r.name, r.status, r.start_ns, r.end_ns, r.duration_ns, r.run_id, r.session_id, r.user_id, r.agent_id, r.team_id,
		r.attributes, a.spans, a.errors
	FROM page p
	JOIN spans r ON r.trace_id = p.trace_id AND r.span_id = p.span_id
	JOIN (
		SELECT s.trace_id, COUNT(*) AS spans, SUM(CASE WHEN s.status = 'ERROR' THEN 1 ELSE 0 END) AS errors
		FROM spans s WHERE s.trace_id IN (SELECT trace_id FROM page) GROUP BY s.trace_id
	) a ON a.trace_id = p.trace_id
	ORDER BY p.start_ns DESC, p.trace_id DESC`,
	} {
		rows, err := r.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(q[:60])
		for rows.Next() {
			var a, b, c int
			var d string
			rows.Scan(&a, &b, &c, &d)
			t.Log("   ", d)
		}
		rows.Close()
		t0 := time.Now()
		for range 100 {
			rows, _ := r.Query(q)
			for rows.Next() {
			}
			rows.Close()
		}
		t.Log("   time", time.Since(t0)/100)
	}
}
