package console_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"
)

// TestMemoriesPage: the console's memories page lists, searches, edits and
// deletes memories, and a key bound to bob never sees or touches alice's.
func TestMemoriesPage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	a := ts.addMemory(aliceKey, `{"memory":"Alice prefers aisle seats","topics":["travel"]}`)
	ts.addMemory(aliceKey, `{"memory":"Alice is vegetarian","topics":["food"]}`)
	ts.addMemory(bobKey, `{"memory":"Bob lives in Lisbon"}`)

	rows := func(cookie, path string) []string {
		resp, body := ts.page(http.MethodGet, path, cookie, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		d := doc(t, body)
		require.Equal(t, 1, d.Find(`[data-testid=nav-memories][aria-current=page]`).Length(), "the nav marks the page")
		out := []string{}
		d.Find("[data-testid=memory-text]").Each(func(_ int, s *goquery.Selection) { out = append(out, s.Text()) })
		return out
	}
	for _, tc := range []struct {
		name, cookie, path string
		want               []string
	}{
		{"alice sees hers", aliceKey, "/ui/memories", []string{"Alice is vegetarian", "Alice prefers aisle seats"}},
		{"search", aliceKey, "/ui/memories?q=AISLE", []string{"Alice prefers aisle seats"}},
		{"bob sees his only", bobKey, "/ui/memories", []string{"Bob lives in Lisbon"}},
		{"bob's user filter is ignored", bobKey, "/ui/memories?user=alice&q=Alice", []string{}},
		{"admin sees everyone's", adminKey, "/ui/memories", []string{"Bob lives in Lisbon", "Alice is vegetarian", "Alice prefers aisle seats"}},
		{"admin filters by user", adminKey, "/ui/memories?user=bob", []string{"Bob lives in Lisbon"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, rows(tc.cookie, tc.path))
		})
	}

	// Bob cannot edit or delete alice's memory: not found, and it stays.
	resp, _ := ts.page(http.MethodPost, "/ui/memories/"+a.MemoryID+"/edit", bobKey, url.Values{"memory": {"hacked"}})
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = ts.page(http.MethodPost, "/ui/memories/"+a.MemoryID+"/delete", bobKey, url.Values{})
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, []string{"Alice is vegetarian", "Alice prefers aisle seats"}, rows(aliceKey, "/ui/memories"))

	// Alice edits hers, and comes back to the list she was on.
	resp, _ = ts.page(http.MethodPost, "/ui/memories/"+a.MemoryID+"/edit", aliceKey,
		url.Values{"memory": {"Alice prefers window seats"}, "topics": {"travel, Seats"}, "back": {"/ui/memories?q=seats"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/ui/memories?q=seats", resp.Header.Get("Location"))
	var got memoryJSON
	ts.json(http.MethodGet, "/memories/"+a.MemoryID, aliceKey, "", http.StatusOK, &got)
	require.Equal(t, "Alice prefers window seats", got.Memory)
	require.Equal(t, []string{"travel", "seats"}, got.Topics)
	// A back address off the memories page is not followed.
	resp, _ = ts.page(http.MethodPost, "/ui/memories/"+a.MemoryID+"/delete", aliceKey, url.Values{"back": {"//evil.example/"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/ui/memories", resp.Header.Get("Location"))
	require.Equal(t, []string{"Alice is vegetarian"}, rows(aliceKey, "/ui/memories"))
	require.Equal(t, []string{"Bob lives in Lisbon"}, rows(bobKey, "/ui/memories"))
}
