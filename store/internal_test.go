package store

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestSessionNameLength(t *testing.T) {
	for _, n := range []int{0, 1, 79, 80, 81, 200} {
		for _, r := range []string{"x", "é", "日", "🙂"} {
			name := SessionName(strings.Repeat(r, n))
			require.LessOrEqual(t, utf8.RuneCountInString(name), maxNameLen)
			require.True(t, utf8.ValidString(name))
			if n > maxNameLen {
				require.True(t, strings.HasSuffix(name, "…"))
			}
		}
	}
}

func TestEscapeLike(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"100%", `100!%`},
		{"a_b", `a!_b`},
		{`back\slash`, `back\slash`},
		{"wow!", "wow!!"},
		{`%_!`, `!%!_!!`},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, escapeLike(tc.in), tc.in)
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain ascii", "plain ascii"},
		{"héllo 日本", "héllo 日本"},
		{"nul\x00byte", "nulbyte"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"\x00\xfe\x00", "\uFFFD"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, text(tc.in), "%q", tc.in)
	}
}

func TestSQLiteDSN(t *testing.T) {
	w := sqliteDSN("/data/troupe.db", "cache=private", false)
	require.True(t, strings.HasPrefix(w, "/data/troupe.db?"), w)
	require.Contains(t, w, "_txlock=immediate")
	require.NotContains(t, w, "query_only")
	require.True(t, strings.HasSuffix(w, "&cache=private"), w)
	r := sqliteDSN("/data/troupe.db", "", true)
	require.Contains(t, r, "query_only")
	require.NotContains(t, r, "_txlock")
}

// Both dialects must describe the same schema history, or a database could
// not move between them and version numbers would mean different things.
func TestMigrationsMatchAcrossDialects(t *testing.T) {
	lite, err := loadMigrations(DialectSQLite)
	require.NoError(t, err)
	pg, err := loadMigrations(DialectPostgres)
	require.NoError(t, err)
	require.NotEmpty(t, lite)
	require.Len(t, pg, len(lite))
	for i := range lite {
		require.Equal(t, i+1, lite[i].version, "versions are consecutive from 1")
		require.Equal(t, lite[i].version, pg[i].version)
		require.Equal(t, lite[i].name, pg[i].name)
	}
}
