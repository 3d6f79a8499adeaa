package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/jobs"
)

// ghostArgs are a job kind the server has no worker for: River fails each
// attempt of it, which is how a job ends discarded here.
type ghostArgs struct {
	N int `json:"n"`
}

func (ghostArgs) Kind() string { return "test_ghost" }

// enqueueGhost queues a job the server's job client has no worker for. It
// is inserted by a client that knows the kind (River refuses to insert
// unknown kinds) and never runs; the server's fails it, once.
func enqueueGhost(t *testing.T, ts *testServer) {
	t.Helper()
	reg := jobs.NewRegistry()
	kind := jobs.Kind[ghostArgs]{MaxAttempts: 1}
	jobs.Register(reg, kind, func(context.Context, ghostArgs) error { return nil })
	inserter, err := ts.db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
	require.NoError(t, err)
	_, err = jobs.Enqueue(t.Context(), inserter, kind, ghostArgs{N: 1})
	require.NoError(t, err)
}

// queueStats is the part of GET /queue/stats these tests read.
type queueStats struct {
	ReplicaID string `json:"replica_id"`
	Queues    []struct {
		Queue       string         `json:"queue"`
		Concurrency int            `json:"concurrency"`
		Counts      map[string]int `json:"counts"`
		Depth       int            `json:"depth"`
		Oldest      float64        `json:"oldest_available_seconds"`
		Kinds       []struct {
			Kind   string         `json:"kind"`
			Counts map[string]int `json:"counts"`
		} `json:"kinds"`
	} `json:"queues"`
}

// jobRow is the part of a job these tests read.
type jobRow struct {
	ID          int64             `json:"id"`
	Kind        string            `json:"kind"`
	Queue       string            `json:"queue"`
	State       string            `json:"state"`
	Attempt     int               `json:"attempt"`
	MaxAttempts int               `json:"max_attempts"`
	Errors      []map[string]any  `json:"errors"`
	Summary     map[string]string `json:"summary"`
	FinalizedAt *time.Time        `json:"finalized_at"`
}

type jobList struct {
	Data []jobRow `json:"data"`
	Meta struct {
		Limit      int    `json:"limit"`
		NextCursor string `json:"next_cursor"`
	} `json:"meta"`
}

func counts(states ...any) map[string]int {
	out := map[string]int{}
	for _, s := range jobs.States {
		out[s] = 0
	}
	for i := 0; i < len(states); i += 2 {
		out[states[i].(string)] = states[i+1].(int)
	}
	return out
}

// TestQueueRoutes drives the queue routes through the server with real
// jobs: background runs held by a blocking model, an ingestion, and a job
// River cannot work (discarded). It checks the stats, the job list's
// filters, paging and summaries, requeueing (a discarded job runs again; a
// requeued background run is not executed twice), the refusals, and the
// Prometheus series.
func TestQueueRoutes(t *testing.T) {
	t.Parallel()
	for name, setup := range replicaDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, withDatabase(setup(t)), withBackground(1, 0), withKeys(keys))
			began := time.Now()
			var runIDs []string
			for i := range 3 {
				status, body, _ := ts.do(http.MethodPost, "/agents/writer/runs", adminKey, "application/json",
					`{"message":"please block, secret plan `+strconv.Itoa(i)+`","background":true}`)
				require.Equal(t, http.StatusAccepted, status, body)
				var br backgroundRun
				require.NoError(t, json.Unmarshal([]byte(body), &br))
				runIDs = append(runIDs, br.RunID)
			}
			defer func() {
				for _, id := range runIDs {
					ts.do(http.MethodPost, "/agents/writer/runs/"+id+"/cancel", adminKey, "", "")
				}
			}()
			doc := filepath.Join(t.TempDir(), "notes.md")
			require.NoError(t, os.WriteFile(doc, []byte("# Notes\n\nThe queue page lists jobs.\n"), 0o644))
			status, up := upload(t, ts, adminKey, nil, doc)
			require.Equal(t, http.StatusAccepted, status, up)
			docID := up["id"].(string)
			enqueueGhost(t, ts)

			var st queueStats
			queue := func(name string) int {
				for i, q := range st.Queues {
					if q.Queue == name {
						return i
					}
				}
				t.Fatalf("no queue %s in %+v", name, st)
				return -1
			}
			require.Eventually(t, func() bool {
				ts.json(http.MethodGet, "/queue/stats", adminKey, "", http.StatusOK, &st)
				r, d := st.Queues[queue("runs")], st.Queues[queue(jobs.DefaultQueue)]
				return r.Counts["running"] == 1 && r.Counts["available"] == 2 && d.Counts["discarded"] == 1 && d.Counts["completed"] == 1
			}, 15*time.Second, 20*time.Millisecond)
			time.Sleep(50 * time.Millisecond) // the waiting runs age
			ts.json(http.MethodGet, "/queue/stats", adminKey, "", http.StatusOK, &st)
			runs := st.Queues[queue("runs")]
			require.Equal(t, 1, runs.Concurrency)
			require.Equal(t, counts("running", 1, "available", 2), runs.Counts)
			require.Equal(t, 2, runs.Depth)
			require.Greater(t, runs.Oldest, 0.0)
			require.Len(t, runs.Kinds, 1)
			require.Equal(t, "background_run", runs.Kinds[0].Kind)
			def := st.Queues[queue(jobs.DefaultQueue)]
			require.Equal(t, counts("completed", 1, "discarded", 1), def.Counts)
			require.Equal(t, 0, def.Depth)
			require.Zero(t, def.Oldest)
			require.Len(t, def.Kinds, 2)
			require.Equal(t, "knowledge_ingest", def.Kinds[0].Kind)
			require.Equal(t, "test_ghost", def.Kinds[1].Kind)

			// The list, its filters and summaries: ids, never the input.
			status, body, _ := ts.do(http.MethodGet, "/queue/jobs?kind=background_run", adminKey, "", "")
			require.Equal(t, http.StatusOK, status, body)
			require.NotContains(t, body, "secret plan")
			var l jobList
			require.NoError(t, json.Unmarshal([]byte(body), &l))
			require.Len(t, l.Data, 3)
			for i, j := range l.Data {
				require.Equal(t, "runs", j.Queue)
				require.Equal(t, runIDs[2-i], j.Summary["run_id"], "newest first")
				require.Equal(t, "agent:writer", j.Summary["component"])
				require.NotEmpty(t, j.Summary["session_id"])
			}
			running := l.Data[2] // the first run queued is the one running
			require.Equal(t, "running", running.State)

			filters := []struct {
				query string
				kinds []string
			}{
				{"state=running", []string{"background_run"}},
				{"state=discarded,completed", []string{"test_ghost", "knowledge_ingest"}},
				{"state=available&state=discarded", []string{"test_ghost", "background_run", "background_run"}},
				{"queue=default", []string{"test_ghost", "knowledge_ingest"}},
				{"kind=knowledge_ingest&state=completed", []string{"knowledge_ingest"}},
				{"kind=knowledge_ingest&state=running", nil},
			}
			for _, f := range filters {
				l = listJobs(t, ts, f.query)
				var got []string
				for _, j := range l.Data {
					got = append(got, j.Kind)
				}
				require.Equal(t, f.kinds, got, f.query)
			}
			l = listJobs(t, ts, "kind=knowledge_ingest")
			require.Equal(t, map[string]string{"document_id": docID, "knowledge": "docs"}, l.Data[0].Summary)
			l = listJobs(t, ts, "kind=test_ghost")
			ghost := l.Data[0]
			require.Equal(t, "discarded", ghost.State)
			require.Len(t, ghost.Errors, 1)
			require.Contains(t, ghost.Errors[0]["error"], "test_ghost")
			require.Equal(t, map[string]string{}, ghost.Summary, "a kind without a summary shows none")

			// Paging: two at a time, every job once.
			var pages [][]int64
			cursor := ""
			for {
				l = listJobs(t, ts, "limit=2&cursor="+cursor)
				require.Equal(t, 2, l.Meta.Limit)
				var ids []int64
				for _, j := range l.Data {
					ids = append(ids, j.ID)
				}
				pages = append(pages, ids)
				if l.Meta.NextCursor == "" {
					break
				}
				cursor = l.Meta.NextCursor
			}
			require.Len(t, pages, 3)
			require.Len(t, pages[0], 2)
			require.Len(t, pages[1], 2)
			require.Len(t, pages[2], 1)
			require.Greater(t, pages[0][1], pages[1][0])

			// Refusals.
			refusals := []struct {
				method, path, key string
				want              int
			}{
				{http.MethodGet, "/queue/jobs?state=lost", adminKey, http.StatusUnprocessableEntity},
				{http.MethodGet, "/queue/jobs?limit=0", adminKey, http.StatusUnprocessableEntity},
				{http.MethodGet, "/queue/jobs?cursor=nonsense", adminKey, http.StatusUnprocessableEntity},
				{http.MethodPost, "/queue/jobs/abc/requeue", adminKey, http.StatusUnprocessableEntity},
				{http.MethodPost, "/queue/jobs/999999999/requeue", adminKey, http.StatusNotFound},
				{http.MethodPost, "/queue/jobs/" + strconv.FormatInt(running.ID, 10) + "/requeue", adminKey, http.StatusConflict},
				{http.MethodGet, "/queue/stats", readerKey, http.StatusForbidden},
				{http.MethodGet, "/queue/jobs", readerKey, http.StatusForbidden},
				{http.MethodPost, "/queue/jobs/" + strconv.FormatInt(ghost.ID, 10) + "/requeue", readerKey, http.StatusForbidden},
				{http.MethodGet, "/queue/stats", "", http.StatusUnauthorized},
			}
			for _, r := range refusals {
				status, body, _ := ts.do(r.method, r.path, r.key, "", "")
				require.Equal(t, r.want, status, "%s %s: %s", r.method, r.path, body)
				require.Contains(t, body, `"detail"`)
			}

			// Prometheus: the same figures.
			status, body, _ = ts.do(http.MethodGet, "/metrics/prometheus", adminKey, "", "")
			require.Equal(t, http.StatusOK, status)
			for _, line := range []string{
				`troupe_jobs_queue_depth{queue="runs"} 2`,
				`troupe_jobs_running{queue="runs"} 1`,
				`troupe_jobs_discarded{queue="default"} 1`,
				`troupe_jobs_queue_depth{queue="default"} 0`,
				`troupe_jobs_oldest_available_age_seconds{queue="default"} 0`,
				`troupe_jobs_failed_attempts_total{kind="background_run"} 0`,
				`troupe_jobs_lease_expiries_total 0`,
			} {
				require.Contains(t, body, line+"\n")
			}
			// The waiting runs have waited since they were queued: more than
			// nothing, less than the test has taken.
			m := regexp.MustCompile(`troupe_jobs_oldest_available_age_seconds\{queue="runs"\} (\d+\.\d+)\n`).FindStringSubmatch(body)
			require.NotNil(t, m, body)
			age, err := strconv.ParseFloat(m[1], 64)
			require.NoError(t, err)
			require.Greater(t, age, 0.0)
			require.Less(t, age, time.Since(began).Seconds())

			// Requeueing the discarded job runs it again: a second attempt,
			// a second error.
			var rq struct {
				Job    jobRow `json:"job"`
				Detail string `json:"detail"`
			}
			ts.json(http.MethodPost, "/queue/jobs/"+strconv.FormatInt(ghost.ID, 10)+"/requeue", adminKey, "", http.StatusOK, &rq)
			require.Equal(t, ghost.ID, rq.Job.ID)
			require.Equal(t, "available", rq.Job.State)
			require.Equal(t, 2, rq.Job.MaxAttempts)
			require.Eventually(t, func() bool {
				l = listJobs(t, ts, "kind=test_ghost")
				return l.Data[0].State == "discarded" && l.Data[0].Attempt == 2
			}, 15*time.Second, 20*time.Millisecond)
			require.Len(t, l.Data[0].Errors, 2)

			// A background run's job requeued after its run ended does not
			// execute the run again. The runs end one by one (cancelled as
			// each starts) so that the queue's one worker is free.
			var rs runState
			for _, id := range runIDs {
				require.Eventually(t, func() bool {
					ts.json(http.MethodGet, "/agents/writer/runs/"+id, adminKey, "", http.StatusOK, &rs)
					return rs.Status == "RUNNING"
				}, 15*time.Second, 10*time.Millisecond)
				ts.json(http.MethodPost, "/agents/writer/runs/"+id+"/cancel", adminKey, "", http.StatusOK, nil)
				require.Eventually(t, func() bool {
					ts.json(http.MethodGet, "/agents/writer/runs/"+id, adminKey, "", http.StatusOK, &rs)
					return rs.Status == "CANCELLED"
				}, 15*time.Second, 10*time.Millisecond)
			}
			require.Eventually(t, func() bool {
				l = listJobs(t, ts, "kind=background_run&state=completed")
				return len(l.Data) == 3
			}, 15*time.Second, 10*time.Millisecond)
			done := l.Data[2] // newest first: the first run's is the last
			require.Equal(t, runIDs[0], done.Summary["run_id"])
			ts.json(http.MethodPost, "/queue/jobs/"+strconv.FormatInt(done.ID, 10)+"/requeue", adminKey, "", http.StatusOK, &rq)
			require.Contains(t, rq.Detail, "at most once")
			require.Eventually(t, func() bool {
				j, ok := findJob(listJobs(t, ts, "kind=background_run"), done.ID)
				return ok && j.State == "completed" && j.Attempt == 2
			}, 15*time.Second, 10*time.Millisecond)
			ts.json(http.MethodGet, "/agents/writer/runs/"+runIDs[0], adminKey, "", http.StatusOK, &rs)
			require.Equal(t, "CANCELLED", rs.Status, "the run was not executed again")
			require.True(t, strings.HasPrefix(rs.RunID, runIDs[0]))
		})
	}
}

// listJobs answers GET /queue/jobs?query, decoded afresh (decoding into a
// used value would merge the summaries' maps).
func listJobs(t *testing.T, ts *testServer, query string) jobList {
	t.Helper()
	var l jobList
	ts.json(http.MethodGet, "/queue/jobs?"+query, adminKey, "", http.StatusOK, &l)
	return l
}

func findJob(l jobList, id int64) (jobRow, bool) {
	for _, j := range l.Data {
		if j.ID == id {
			return j, true
		}
	}
	return jobRow{}, false
}

// TestConsoleJobsPage renders the console's jobs page: the queues' counts,
// the jobs with their errors, filters, paging, and the requeue button for
// admins, which posts like the console's other forms (same origin only).
func TestConsoleJobsPage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	enqueueGhost(t, ts)
	doc1 := filepath.Join(t.TempDir(), "notes.md")
	require.NoError(t, os.WriteFile(doc1, []byte("# Notes\n\nJobs.\n"), 0o644))
	status, up := upload(t, ts, adminKey, nil, doc1)
	require.Equal(t, http.StatusAccepted, status, up)
	require.Eventually(t, func() bool {
		l := listJobs(t, ts, "state=completed,discarded")
		return len(l.Data) == 2
	}, 15*time.Second, 20*time.Millisecond)

	resp, body := ts.page("GET", "/ui/queue", readerKey, nil, "Accept", "text/html")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, body, "admin")

	resp, body = ts.page("GET", "/ui/queue", adminKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	d := doc(t, body)
	require.Equal(t, "page", d.Find("[data-testid=nav-queue]").AttrOr("aria-current", ""))
	def := d.Find("[data-testid=queue-default]")
	require.Equal(t, "1", def.Find("[data-testid=queue-discarded]").Text())
	require.Equal(t, "1", def.Find("[data-testid=queue-completed]").Text())
	require.Equal(t, 1, d.Find("[data-testid=queue-runs]").Length(), "the runs queue is listed without jobs")
	rows := d.Find("[data-testid=job-row]")
	require.Equal(t, 2, rows.Length())
	ghost := rows.Last() // newest first: the ghost was queued before the upload
	require.Equal(t, "discarded", ghost.AttrOr("data-state", ""))
	require.Contains(t, ghost.Find("[data-testid=job-error]").Text(), "test_ghost")
	require.Equal(t, 1, ghost.Find("[data-testid=job-requeue]").Length())
	require.Contains(t, rows.First().Text(), "knowledge=docs")
	ghostID := ghost.AttrOr("data-job-id", "")

	filtered := []struct {
		query string
		ids   int
		next  bool
	}{
		{"?state=discarded", 1, false},
		{"?state=running", 0, false},
		{"?kind=knowledge_ingest", 1, false},
		{"?limit=1", 1, true},
	}
	for _, f := range filtered {
		resp, body = ts.page("GET", "/ui/queue"+f.query, adminKey, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, f.query)
		d = doc(t, body)
		require.Equal(t, f.ids, d.Find("[data-testid=job-row]").Length(), f.query)
		require.Equal(t, f.next, d.Find("[data-testid=jobs-next]").Length() == 1, f.query)
	}
	first := d.Find("[data-testid=job-row]").AttrOr("data-job-id", "")
	next := d.Find("[data-testid=jobs-next]").AttrOr("href", "")
	resp, body = ts.page("GET", next+"&limit=1", adminKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	second := doc(t, body).Find("[data-testid=job-row]")
	require.Equal(t, 1, second.Length())
	require.Equal(t, ghostID, second.AttrOr("data-job-id", ""), "the next page goes on after the first")
	require.NotEqual(t, first, ghostID)

	path := "/ui/queue/jobs/" + ghostID + "/requeue"
	resp, _ = ts.page("POST", path, adminKey, url.Values{}, "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = ts.page("POST", path, readerKey, url.Values{})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = ts.page("POST", path, adminKey, url.Values{}, "Sec-Fetch-Site", "same-origin", "Origin", ts.url)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/ui/queue?requeued="+ghostID, resp.Header.Get("Location"))
	resp, body = ts.page("GET", resp.Header.Get("Location"), adminKey, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, doc(t, body).Find("[data-testid=flash]").Text(), "Job "+ghostID+" is available again")
	require.Eventually(t, func() bool {
		l := listJobs(t, ts, "kind=test_ghost")
		return l.Data[0].State == "discarded" && l.Data[0].Attempt == 2
	}, 15*time.Second, 20*time.Millisecond)
	resp, _ = ts.page("POST", "/ui/queue/jobs/999999999/requeue", adminKey, url.Values{}, "Sec-Fetch-Site", "same-origin", "Origin", ts.url)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// TestBrowserJobsRequeue requeues a discarded job from the jobs page in
// Chromium: the form posts from the page's own origin and the page comes
// back with the flash.
func TestBrowserJobsRequeue(t *testing.T) {
	ts := startServer(t)
	enqueueGhost(t, ts)
	require.Eventually(t, func() bool { return len(listJobs(t, ts, "state=discarded").Data) == 1 }, 15*time.Second, 20*time.Millisecond)
	b := newBrowser(t, ts.url)
	b.open("/ui/queue", "[data-testid=job-requeue]")
	require.Contains(t, b.text("[data-testid=job-error]"), "test_ghost")
	b.click("[data-testid=job-requeue]")
	b.until(`document.querySelector("[data-testid=flash]") !== null`, 10*time.Second)
	require.Contains(t, b.text("[data-testid=flash]"), "is available again")
	require.Eventually(t, func() bool {
		l := listJobs(t, ts, "kind=test_ghost")
		return l.Data[0].Attempt == 2
	}, 15*time.Second, 20*time.Millisecond)
	b.screenshot("jobs")
}
