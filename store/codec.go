package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// sqliteTimeFormat is how SQLite stores timestamps: UTC, fixed width, with
// microseconds, so that comparing the text compares the times.
const sqliteTimeFormat = "2006-01-02T15:04:05.000000Z"

// sqliteFarFuture is later than every time SQLite stores.
const sqliteFarFuture = "9999-12-31T23:59:59.999999Z"

// maxStoredTime is the latest time the store orders correctly: later ones
// have five-digit years.
var maxStoredTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)

// normTime returns t as the store keeps it: UTC, truncated to the microsecond
// that PostgreSQL's timestamptz holds, without a monotonic clock reading. Values
// handed back to callers are normalised the same way, so what a caller holds
// after a write equals what a later read returns.
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// timeArg converts a normalised time to a query argument.
func (db *DB) timeArg(t time.Time) any {
	if db.dialect == DialectSQLite {
		return t.UTC().Format(sqliteTimeFormat)
	}
	return t
}

// timeDest scans a timestamp column from either dialect (text from SQLite,
// time.Time from PostgreSQL) into a UTC time.
type timeDest struct{ t *time.Time }

func (d timeDest) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*d.t = v.UTC()
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	case nil:
		*d.t = time.Time{}
	default:
		return fmt.Errorf("store: cannot scan %T into a timestamp", src)
	}
	return nil
}

func (d timeDest) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("store: bad timestamp %q: %w", s, err)
	}
	*d.t = t.UTC()
	return nil
}

// jsonArg encodes v for a JSON column. It returns a string because SQLite's
// STRICT TEXT columns reject []byte (a BLOB), and pgx sends a string bound to
// a json parameter verbatim.
func jsonArg(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeJSON decodes a JSON column into v; an empty column leaves v alone.
func decodeJSON(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

// text makes free text (user input, model output, errors) storable in both
// dialects alike: PostgreSQL rejects NUL bytes and invalid UTF-8 in text
// columns, so a stray byte in a model's answer must not lose the whole run.
// The common case costs two scans and no allocation.
func text(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}
