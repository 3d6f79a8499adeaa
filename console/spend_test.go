package console_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// spendSpecs price the scripted model at $3 / $15 per million tokens, and
// leave one model without a price.
const spendSpecs = `kind: Model
name: priced
provider: anthropic
model: scripted
api_key: sk-test
pricing: {input: 3, output: 15}
---
kind: Model
name: unpriced
provider: anthropic
model: no-such-model-2099
api_key: sk-test
---
kind: Budget
name: daily-user
per: user
period: day
limits: {cost: 0.01, tokens: 2000}
---
kind: Budget
name: pot
limits: {tokens: 100000}
---
kind: Agent
name: a1
model: priced
budgets: [daily-user, pot]
---
kind: Agent
name: a2
model: priced
budgets: [pot]
---
kind: Agent
name: u1
model: unpriced
`

const spendKeys = "sk-admin-0123456789abcdef=admin,sk-alice-0123456789abcdef=agents:read+agents:run+sessions:read@alice"

// spendServer runs four runs: alice on a1 ($0.006, 1600 tokens) and a2
// ($0.0018, 200), bob on a1 ($0.006, 2000, moved three days back) and on
// u1, whose model has no price (100 tokens, cost unknown).
func spendServer(t *testing.T) *testServer {
	script := fake.New(
		fake.Step{Content: "one", Usage: model.Usage{InputTokens: 1500, OutputTokens: 100}},
		fake.Step{Content: "two", Usage: model.Usage{InputTokens: 2000}},
		fake.Step{Content: "three", Usage: model.Usage{InputTokens: 100, OutputTokens: 100}},
		fake.Step{Content: "four", Usage: model.Usage{InputTokens: 50, OutputTokens: 50}},
	)
	ts := startServer(t, withProvider("anthropic", script), withSpecs(spendSpecs), withKeys(spendKeys))
	var bobs budgetRun
	for _, r := range []struct{ agent, user string }{{"a1", "alice"}, {"a1", "bob"}, {"a2", "alice"}, {"u1", "bob"}} {
		var run budgetRun
		ts.json(http.MethodPost, "/agents/"+r.agent+"/runs", "sk-admin-0123456789abcdef",
			`{"message":"go","stream":false,"user_id":"`+r.user+`"}`, http.StatusOK, &run)
		require.Equal(t, "COMPLETED", run.Status, r)
		if r.user == "bob" && r.agent == "a1" {
			bobs = run
		}
	}
	back := time.Now().UTC().AddDate(0, 0, -3).Format("2006-01-02T15:04:05.000000Z")
	_, err := ts.db.Bun().ExecContext(t.Context(), "UPDATE runs SET created_at = ? WHERE id = ?", back, bobs.RunID)
	require.NoError(t, err)
	return ts
}

type spendRow struct{ cost, runs, tokens string }

func spendRows(d *goquery.Document, table string) map[string]spendRow {
	out := map[string]spendRow{}
	d.Find("[data-testid=" + table + "] [data-testid=spend-row]").Each(func(_ int, s *goquery.Selection) {
		out[s.AttrOr("data-name", "?")] = spendRow{s.Find("[data-testid=spend-cost]").Text(), s.Find("[data-testid=spend-runs]").Text(), s.Find("[data-testid=spend-tokens]").Text()}
	})
	return out
}

// TestConsoleSpendPage: the Spend page's totals, agents and users for
// today, the last 7 days and custom windows, from runs whose costs are
// tokens × the Model's pricing; a model without a price marks its cost
// as a lower bound.
func TestConsoleSpendPage(t *testing.T) {
	t.Parallel()
	ts := spendServer(t)
	const admin = "sk-admin-0123456789abcdef"
	today := time.Now().UTC().Format(time.DateOnly)
	for _, tc := range []struct {
		name, path         string
		cost, runs, tokens string
		components, users  map[string]spendRow
		bars               int
	}{
		{"today", "/ui/spend", "$0.0078+", "3", "1900",
			map[string]spendRow{"a1": {"$0.006", "1", "1600"}, "a2": {"$0.0018", "1", "200"}, "u1": {"$0+", "1", "100"}},
			map[string]spendRow{"alice": {"$0.0078", "2", "1800"}, "bob": {"$0+", "1", "100"}}, 1},
		{"7d", "/ui/spend?window=7d", "$0.0138+", "4", "3900",
			map[string]spendRow{"a1": {"$0.012", "2", "3600"}, "a2": {"$0.0018", "1", "200"}, "u1": {"$0+", "1", "100"}},
			map[string]spendRow{"alice": {"$0.0078", "2", "1800"}, "bob": {"$0.006+", "2", "2100"}}, 7},
		{"custom, three days back only", "/ui/spend?window=custom&from=" + time.Now().UTC().AddDate(0, 0, -3).Format(time.DateOnly) + "&to=" + time.Now().UTC().AddDate(0, 0, -3).Format(time.DateOnly),
			"$0.006", "1", "2000", map[string]spendRow{"a1": {"$0.006", "1", "2000"}}, map[string]spendRow{"bob": {"$0.006", "1", "2000"}}, 1},
		{"custom, before any run", "/ui/spend?window=custom&from=2020-01-01&to=2020-01-31", "$0", "0", "0", map[string]spendRow{}, map[string]spendRow{}, 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := ts.page(http.MethodGet, tc.path, admin, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			d := doc(t, body)
			require.Equal(t, tc.cost, d.Find("[data-testid=spend-total-cost]").Text())
			require.Equal(t, tc.runs, d.Find("[data-testid=spend-total-runs]").Text())
			require.Equal(t, tc.tokens, d.Find("[data-testid=spend-total-tokens]").Text())
			require.Equal(t, tc.components, spendRows(d, "spend-components"))
			require.Equal(t, tc.users, spendRows(d, "spend-users"))
			require.Equal(t, tc.bars, d.Find("[data-testid=spend-bar]").Length())
			require.Equal(t, strings.Contains(tc.cost, "+"), d.Find("[data-testid=cost-unknown]").Length() == 1)
		})
	}
	// Today's bar is the chart's highest, the others empty.
	_, body := ts.page(http.MethodGet, "/ui/spend", admin, nil)
	require.Equal(t, 1, doc(t, body).Find("[data-testid=window-today][aria-current=page]").Length())
	require.Contains(t, doc(t, body).Find("[data-testid=spend-chart] title").Text(), today+": $0.0078, 3 runs")

	// Both pages keep to the console's CSP: no inline script or style
	// attribute; the charts and bars are SVG attributes and classes.
	for _, path := range []string{"/ui/spend?window=7d", "/ui/budgets"} {
		resp, body := ts.page(http.MethodGet, path, admin, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
		require.NotRegexp(t, `<script>|<script [^>]*>[^<]|\sstyle=`, body, path)
		require.Equal(t, "page", doc(t, body).Find("[data-testid=nav-"+strings.TrimPrefix(strings.Split(path, "?")[0], "/ui/")+"]").AttrOr("aria-current", ""))
	}

	resp, body := ts.page(http.MethodGet, "/ui/spend?window=custom&from=2026-02-10&to=2026-01-01", admin, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, doc(t, body).Find("[data-testid=spend-error]").Text(), "To is before From")
}

// TestConsoleSpendUserBoundKey: alice's key sees her own runs only, and no
// other user's line, whatever the window.
func TestConsoleSpendUserBoundKey(t *testing.T) {
	t.Parallel()
	ts := spendServer(t)
	resp, body := ts.page(http.MethodGet, "/ui/spend?window=7d", "sk-alice-0123456789abcdef", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	d := doc(t, body)
	require.Equal(t, "alice", d.Find("[data-testid=spend-user]").Text())
	require.Equal(t, "$0.0078", d.Find("[data-testid=spend-total-cost]").Text())
	require.Equal(t, "2", d.Find("[data-testid=spend-total-runs]").Text())
	require.Equal(t, map[string]spendRow{"alice": {"$0.0078", "2", "1800"}}, spendRows(d, "spend-users"))
	require.Equal(t, map[string]spendRow{"a1": {"$0.006", "1", "1600"}, "a2": {"$0.0018", "1", "200"}}, spendRows(d, "spend-components"))
	require.NotContains(t, body, "bob")
}

// TestConsoleBudgetsPage: each budget with its limits, who references it,
// and each counter's consumption bars. Counters count what ran in today's
// window when it ran, on the agents that reference the budget (a1 only):
// alice used $0.006 of $0.01 (60 %, green) and 1600 of 2000 tokens (80 %,
// amber); bob $0.006 (60 %) and 2000 tokens (100 %, red).
// A user-bound key sees only its user's counters.
func TestConsoleBudgetsPage(t *testing.T) {
	t.Parallel()
	ts := spendServer(t)
	resp, body := ts.page(http.MethodGet, "/ui/budgets", "sk-admin-0123456789abcdef", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	d := doc(t, body)
	daily := d.Find("[data-testid=budget][data-name=daily-user]")
	require.Equal(t, "user", daily.Find("[data-testid=budget-per]").Text())
	require.Equal(t, time.Now().UTC().Format(time.DateOnly), daily.Find("[data-testid=budget-window]").Text())
	require.Equal(t, "cost $0.01 · tokens 2000", daily.Find("[data-testid=budget-limits]").Text())
	require.Equal(t, "agent a1", strings.TrimSpace(daily.Find("[data-testid=budget-used-by]").Text()))
	consumption := func(s *goquery.Selection) map[string]string {
		out := map[string]string{}
		s.Find("[data-testid=consumption]").Each(func(_ int, c *goquery.Selection) {
			out[c.AttrOr("data-kind", "?")] = c.Find("[data-testid=consumption-pct]").Text() + " " + c.AttrOr("class", "")
		})
		return out
	}
	require.Equal(t, 2, daily.Find("[data-testid=budget-counter]").Length())
	require.Equal(t, map[string]string{"cost": "60% meter ok", "tokens": "80% meter warn"},
		consumption(daily.Find("[data-testid=budget-counter][data-scope='user:alice']")))
	require.Equal(t, map[string]string{"cost": "60% meter ok", "tokens": "100% meter bad"},
		consumption(daily.Find("[data-testid=budget-counter][data-scope='user:bob']")))

	pot := d.Find("[data-testid=budget][data-name=pot]")
	require.Equal(t, "agent a1, agent a2", strings.Join(strings.Fields(pot.Find("[data-testid=budget-used-by]").Text()), " "))
	// 3800 of 100,000 tokens: the shared pot of a1 and a2 (u1 has none).
	require.Equal(t, map[string]string{"tokens": "3% meter ok"}, consumption(pot.Find("[data-testid=budget-counter]")))

	resp, body = ts.page(http.MethodGet, "/ui/budgets", "sk-alice-0123456789abcdef", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	d = doc(t, body)
	require.Equal(t, 1, d.Find("[data-testid=budget-counter]").Length(), "alice's own counter only")
	require.Equal(t, 1, d.Find("[data-testid=budget-counter][data-scope='user:alice']").Length())
	require.NotContains(t, body, "user:bob")
}

// TestConsoleCostWhereTokensShow: the overview's card of today's cost and
// its recent runs, the session page's runs and the trace page's spans show
// cost next to tokens.
func TestConsoleCostWhereTokensShow(t *testing.T) {
	t.Parallel()
	ts := spendServer(t)
	const admin = "sk-admin-0123456789abcdef"
	_, body := ts.page(http.MethodGet, "/", admin, nil)
	d := doc(t, body)
	require.Equal(t, "$0.0078+", d.Find("[data-testid=today-cost-value]").Text(), "three runs today, one unpriced")
	var costs []string
	d.Find("[data-testid=run-row] [data-testid=run-cost]").Each(func(_ int, s *goquery.Selection) { costs = append(costs, s.Text()) })
	require.ElementsMatch(t, []string{"$0.006", "$0.006", "$0.0018", "$0+"}, costs, "the recent runs, bob's older one included")

	_, body = ts.page(http.MethodGet, "/", "sk-alice-0123456789abcdef", nil)
	require.Equal(t, "$0.0078", doc(t, body).Find("[data-testid=today-cost-value]").Text(), "alice's own runs")

	var page struct {
		Data []struct {
			SessionID string `json:"session_id"`
		} `json:"data"`
	}
	ts.json(http.MethodGet, "/sessions?type=agent&component_id=a2", admin, "", http.StatusOK, &page)
	require.Len(t, page.Data, 1)
	_, body = ts.page(http.MethodGet, "/ui/sessions/"+page.Data[0].SessionID, admin, nil)
	require.Equal(t, "$0.0018", doc(t, body).Find("[data-testid=usage] [data-testid=usage-cost]").Text())

	var runs []struct {
		RunID string `json:"run_id"`
	}
	ts.json(http.MethodGet, "/agents/a2/runs", admin, "", http.StatusOK, &runs)
	require.Len(t, runs, 1)
	var list struct {
		Data []map[string]any `json:"data"`
	}
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/traces?run_id="+runs[0].RunID, admin, "", http.StatusOK, &list)
		return len(list.Data) == 1
	}, 10*time.Second, 20*time.Millisecond)
	_, body = ts.page(http.MethodGet, "/ui/traces/"+list.Data[0]["trace_id"].(string), admin, nil)
	var spans []string
	doc(t, body).Find("[data-testid=span-cost]").Each(func(_ int, s *goquery.Selection) { spans = append(spans, s.Text()) })
	require.Equal(t, []string{"$0.0018", "$0.0018"}, spans, "the run's span and its model call's")
}
