package view

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// dur formats a duration for people: 850µs, 12.4ms, 1.52s, 3m05s.
func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// stamp formats a time in UTC, precise enough to tell runs apart.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// iso is the machine-readable time for <time datetime>.
func iso(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func bytes(n int64) string {
	switch {
	case n < 1024:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + " KB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
}

func itoa(n int) string { return strconv.Itoa(n) }

func u64(n uint64) string { return strconv.FormatUint(n, 10) }

// pct formats a CSS percentage.
func pct(f float64) string { return strconv.FormatFloat(math.Max(0, f), 'f', 3, 64) + "%" }

// clip shortens s to n runes for lists.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// MaxShownText bounds the text a page shows of one message, answer, error or
// tool call's arguments: a 9 MiB message made a 9.4 MB page. The API
// returns the whole text.
const MaxShownText = 64 << 10

// shown returns s cut to MaxShownText bytes (at a character boundary),
// with a note of how much was left out and where to find it.
func shown(s string) string {
	if len(s) <= MaxShownText {
		return s
	}
	cut := MaxShownText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… %d bytes more; see the API (GET /sessions/{id}/runs)", len(s)-cut)
}

// args renders tool arguments as indented JSON.
func args(m map[string]any) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Sprint(m)
	}
	return string(b)
}

// statusClass maps run, object and span statuses to a badge style.
func statusClass(s string) string {
	switch strings.ToLower(s) {
	case "ok", "completed":
		return "badge ok"
	case "error", "broken", "failed":
		return "badge bad"
	case "stale", "cancelled", "processing", "running":
		return "badge warn"
	}
	return "badge"
}

func tokens(m event.Metrics) string {
	return fmt.Sprintf("%d in · %d out", m.InputTokens, m.OutputTokens)
}

// runDuration is how long a run took: its own metric, or its timestamps.
func runDuration(r store.Run) time.Duration {
	if r.Metrics.Duration > 0 {
		return r.Metrics.Duration
	}
	if r.Status.Terminal() {
		return r.UpdatedAt.Sub(r.CreatedAt)
	}
	return 0
}

func targetURL(typ, name string) string {
	switch typ {
	case "team":
		return "/ui/teams/" + name
	case "a2a":
		// A remote A2A member has no page here; its Tool document is on the
		// config page.
		return "/ui/config"
	}
	return "/ui/agents/" + name
}

func pageURL(base string, page int) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "page=" + strconv.Itoa(page)
}

func queryEscape(s string) string { return url.QueryEscape(s) }

// metadataLine shows a document's metadata on one line, keys sorted, each
// value clipped: learnings carry their run, session, user and agent.
func metadataLine(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := fmt.Sprint(m[k])
		if b, err := json.Marshal(m[k]); err == nil {
			if _, isString := m[k].(string); !isString {
				v = string(b)
			}
		}
		parts[i] = k + "=" + clip(v, 80)
	}
	return strings.Join(parts, " · ")
}
