package trigger

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

// TestNext: cron ticks follow their time zone across a daylight-saving
// change; intervals tick at multiples of themselves since the epoch, so
// every replica agrees; webhooks have no ticks.
func TestNext(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	tests := []struct {
		name    string
		trigger spec.Trigger
		now     time.Time
		want    time.Time
		ok      bool
	}{
		{"cron in winter", spec.Trigger{Schedule: &spec.Schedule{Cron: "0 2 * * *", Timezone: "Europe/Paris"}},
			time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC), time.Date(2026, 1, 11, 1, 0, 0, 0, time.UTC), true},
		{"cron in summer", spec.Trigger{Schedule: &spec.Schedule{Cron: "0 2 * * *", Timezone: "Europe/Paris"}},
			time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 11, 0, 0, 0, 0, time.UTC), true},
		{"cron in UTC", spec.Trigger{Schedule: &spec.Schedule{Cron: "*/15 * * * *", Timezone: "UTC"}},
			time.Date(2026, 1, 10, 12, 7, 30, 0, time.UTC), time.Date(2026, 1, 10, 12, 15, 0, 0, time.UTC), true},
		{"every hour", spec.Trigger{Schedule: &spec.Schedule{Every: spec.Duration(time.Hour)}},
			time.Date(2026, 1, 10, 12, 7, 30, 0, paris), time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC), true},
		{"every second on a tick", spec.Trigger{Schedule: &spec.Schedule{Every: spec.Duration(time.Second)}},
			time.Date(2026, 1, 10, 12, 0, 5, 0, time.UTC), time.Date(2026, 1, 10, 12, 0, 6, 0, time.UTC), true},
		{"webhook", spec.Trigger{Webhook: &spec.Webhook{Path: "x"}}, time.Now(), time.Time{}, false},
	}
	for _, tc := range tests {
		got, ok := Next(&tc.trigger, tc.now)
		require.Equal(t, tc.ok, ok, tc.name)
		require.True(t, tc.want.Equal(got), "%s: got %s, want %s", tc.name, got, tc.want)
	}
}

// TestVerify: only "sha256=" and the hex HMAC-SHA256 of the exact body under
// the secret is accepted.
func TestVerify(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef"
	body := []byte(`{"ref":"main"}`)
	good := Sign(secret, body)
	// The digest of this body under this secret, computed independently
	// with openssl dgst -sha256 -hmac.
	require.Equal(t, "sha256=0c13d03f0473d9bf4b4acf75c5c2ead899393e509296a9c7586741b7a4e79659", good)
	tests := []struct {
		name string
		sig  string
		body []byte
		want bool
	}{
		{"good", good, body, true},
		{"good with spaces", " " + good + " ", body, true},
		{"empty", "", body, false},
		{"no prefix", good[7:], body, false},
		{"other body", good, []byte(`{"ref":"dev"}`), false},
		{"other secret", Sign("fedcba9876543210", body), body, false},
		{"not hex", "sha256=zz", body, false},
		{"truncated", good[:len(good)-2], body, false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, Verify(secret, tc.sig, tc.body), tc.name)
	}
}

// TestMessage: what a firing's run is told.
func TestMessage(t *testing.T) {
	t.Parallel()
	tick := time.Date(2026, 1, 10, 2, 0, 0, 0, time.UTC)
	hook := &spec.Webhook{Path: "x"}
	tests := []struct {
		name    string
		trigger spec.Trigger
		body    []byte
		want    string
	}{
		{"schedule message", spec.Trigger{Message: "hi"}, nil, "hi"},
		{"schedule input", spec.Trigger{Input: map[string]any{"topic": "news"}}, nil, `{"topic":"news"}`},
		{"schedule bare", spec.Trigger{}, nil, "Trigger t fired for 2026-01-10T02:00:00Z"},
		{"webhook raw body", spec.Trigger{Webhook: hook}, []byte(`{"a":1}`), `{"a":1}`},
		{"webhook message", spec.Trigger{Webhook: hook, Message: "pushed"}, []byte(`{"a":1}`), "pushed"},
		{"webhook run now", spec.Trigger{Webhook: hook}, nil, "Trigger t fired for 2026-01-10T02:00:00Z"},
		{"webhook run now with message", spec.Trigger{Webhook: hook, Message: "pushed"}, nil, "pushed"},
	}
	for _, tc := range tests {
		tc.trigger.Name = "t"
		got, err := message(t.Context(), &tc.trigger, tick, nil, tc.body)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
}
