package sse

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

// ev builds an expected event.
func ev(name, data string) Event {
	return Event{Name: name, Data: []byte(data)}
}

// truncated builds an expected event cut off by the end of the stream.
func truncated(name, data string) Event {
	return Event{Name: name, Data: []byte(data), Truncated: true}
}

// readAll reads events until an error and returns them with the error.
func readAll(t *testing.T, r *Reader) ([]Event, error) {
	t.Helper()
	var evs []Event
	for range 10000 {
		e, err := r.Next()
		if err != nil {
			require.Zero(t, e, "an error comes with no event")
			return evs, err
		}
		require.NotEmpty(t, e.Data, "a dispatched event has data")
		evs = append(evs, e)
	}
	require.FailNow(t, "the reader never stopped")
	return nil, nil
}

// splits returns ways of delivering s: whole, a byte at a time, in halves,
// with io.EOF together with the last data, and cut in two at every byte.
func splits(s string) map[string]func() io.Reader {
	m := map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(s) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
	}
	for i := 1; i < len(s); i++ {
		m[fmt.Sprintf("cut at %d", i)] = func() io.Reader {
			return io.MultiReader(strings.NewReader(s[:i]), strings.NewReader(s[i:]))
		}
	}
	return m
}

func TestNext(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []Event
	}{
		{"empty stream", "", nil},
		{"only blank lines", "\n\n\r\n\r\r", nil},
		{"one event", "data: hello\n\n", []Event{ev("", "hello")}},
		{"named event", "event: delta\ndata: {}\n\n", []Event{ev("delta", "{}")}},
		{"name after data", "data: {}\nevent: delta\n\n", []Event{ev("delta", "{}")}},
		{"last name wins", "event: a\nevent: b\ndata: x\n\n", []Event{ev("b", "x")}},
		{"two events", "event: a\ndata: 1\n\ndata: 2\n\n", []Event{ev("a", "1"), ev("", "2")}},
		{"multi-line data", "data: {\"a\":\ndata: 1}\ndata:\ndata: end\n\n", []Event{ev("", "{\"a\":\n1}\n\nend")}},
		{"no space after the colon", "event:x\ndata:{}\n\n", []Event{ev("x", "{}")}},
		{"only one space is stripped", "data:  two\n\n", []Event{ev("", " two")}},
		{"tab is kept", "data:\tx\n\n", []Event{ev("", "\tx")}},
		{"colons in the value", "data: a: b:c\n\n", []Event{ev("", "a: b:c")}},
		{"trailing spaces are kept", "data: x  \n\n", []Event{ev("", "x  ")}},
		{"comments", ": ping\n:\ndata: x\n: between\n\n: after\n\n", []Event{ev("", "x")}},
		{"id and retry ignored", "id: 7\nretry: 100\ndata: x\nid\n\n", []Event{ev("", "x")}},
		{"unknown fields ignored", "foo: bar\nDATA: up\nEvent: up\ndata: x\n\n", []Event{ev("", "x")}},
		{"field without colon", "data\ndata\n\n", []Event{ev("", "\n")}},
		{"event without data is not dispatched", "event: ping\n\ndata: x\n\n", []Event{ev("", "x")}},
		{"empty data is not dispatched", "event: a\ndata:\n\ndata\n\ndata: x\n\n", []Event{ev("", "x")}},
		{"name does not outlive its event", "event: a\ndata: 1\n\ndata: 2\n\n", []Event{ev("a", "1"), ev("", "2")}},
		{"crlf", "event: a\r\ndata: 1\r\ndata: 2\r\n\r\n: c\r\n\r\n", []Event{ev("a", "1\n2")}},
		{"cr", "event: a\rdata: 1\rdata: 2\r\r: c\r\r", []Event{ev("a", "1\n2")}},
		{"mixed line endings", "data: 1\rdata: 2\r\ndata: 3\n\r\ndata: 4\r\n\rdata: 5\n\n", []Event{ev("", "1\n2\n3"), ev("", "4"), ev("", "5")}},
		{"lf cr is two line endings", "data: 1\n\rdata: 2\n\n", []Event{ev("", "1"), ev("", "2")}},
		{"byte order mark", "\xEF\xBB\xBFdata: x\n\n", []Event{ev("", "x")}},
		{"only one byte order mark", "\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n", []Event{ev("", "y")}},
		{"bom later is data", "data: \xEF\xBB\xBFx\n\n", []Event{ev("", "\xEF\xBB\xBFx")}},
		{"utf-8", "data: wörld ✓\n\n", []Event{ev("", "wörld ✓")}},
		{"truncated after a line", "data: 1\n\ndata: 2\n", []Event{ev("", "1"), truncated("", "2")}},
		{"truncated mid-line", "event: a\ndata: {\"ta", []Event{truncated("a", "{\"ta")}},
		{"truncated after crlf", "data: x\r\n", []Event{truncated("", "x")}},
		{"truncated after cr", "data: x\r", []Event{truncated("", "x")}},
		{"unterminated comment", "data: 1\n\n: bye", []Event{ev("", "1")}},
		{"unterminated name only", "data: 1\n\nevent: x\n", []Event{ev("", "1")}},
		{"unterminated empty data", "data: 1\n\ndata:", []Event{ev("", "1")}},
		{"unterminated field cut in its name", "data: 1\n\ndat", []Event{ev("", "1")}},
		{"crlf terminated last event", "data: x\r\n\r\n", []Event{ev("", "x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, reader := range splits(tt.stream) {
				r := NewReader(reader(), 1024)
				got, err := readAll(t, r)
				require.ErrorIs(t, err, io.EOF, how)
				require.Equal(t, tt.want, got, how)
				_, err = r.Next()
				require.ErrorIs(t, err, io.EOF, "%s: EOF again", how)
			}
		})
	}
}

func TestEndMarker(t *testing.T) {
	const stream = ":comment\r\n" +
		"event: chunk\r\n" +
		"id: 7\r\n" +
		"data: {\"a\":1}\r\n" +
		"\r\n" +
		"data:{\"b\":\r\n" + // one event split over two data lines
		"data: 2}\n" +
		"\n" +
		"retry: 100\n" +
		"\n\n\n" +
		"data: {\"c\":3}\n" + // no blank line before [DONE]
		"data: [DONE]\n" +
		"data: {\"tail\""
	want := []Event{
		ev("chunk", `{"a":1}`),
		ev("", "{\"b\":\n2}"),
		ev("", `{"c":3}`),
		ev("", "[DONE]"),
		truncated("", `{"tail"`),
	}
	for how, reader := range splits(stream) {
		r := NewReader(reader(), 1024)
		r.SetEndMarker("[DONE]")
		got, err := readAll(t, r)
		require.ErrorIs(t, err, io.EOF, how)
		require.Equal(t, want, got, how)
	}

	tests := []struct {
		name   string
		marker string
		stream string
		want   []Event
	}{
		{"alone", "[DONE]", "data: [DONE]\n\n", []Event{ev("", "[DONE]")}},
		{"unterminated", "[DONE]", "data: x\n\ndata: [DONE]", []Event{ev("", "x"), ev("", "[DONE]")}},
		{"keeps its name", "[DONE]", "event: end\ndata: [DONE]\n\n", []Event{ev("end", "[DONE]")}},
		{"after data", "[DONE]", "event: a\ndata: 1\ndata: [DONE]\n\n", []Event{ev("a", "1"), ev("", "[DONE]")}},
		{"after empty data", "[DONE]", "data:\ndata: [DONE]\n\n", []Event{ev("", "[DONE]")}},
		{"reading goes on", "[DONE]", "data: [DONE]\ndata: 2\n\n", []Event{ev("", "[DONE]"), ev("", "2")}},
		{"twice", "[DONE]", "data: [DONE]\ndata: [DONE]\n", []Event{ev("", "[DONE]"), ev("", "[DONE]")}},
		{"must be the whole value", "[DONE]", "data: [DONE] \ndata: x[DONE]\n\n", []Event{ev("", "[DONE] \nx[DONE]")}},
		{"only in data", "[DONE]", "event: [DONE]\n: [DONE]\n[DONE]\ndata: x\n\n", []Event{ev("[DONE]", "x")}},
		{"off", "", "data: [DONE]\ndata:\n\n", []Event{ev("", "[DONE]\n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, reader := range splits(tt.stream) {
				r := NewReader(reader(), 1024)
				r.SetEndMarker(tt.marker)
				got, err := readAll(t, r)
				require.ErrorIs(t, err, io.EOF, how)
				require.Equal(t, tt.want, got, how)
			}
		})
	}
}

// TestNoWaitAfterLineEnding checks that an event is returned as soon as its
// blank line arrives, and an end marker as soon as its line does: reading
// more would block on a live stream.
func TestNoWaitAfterLineEnding(t *testing.T) {
	for _, ending := range []string{"\n", "\r\n", "\r"} {
		t.Run(fmt.Sprintf("%q", ending), func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pr.Close()
			r := NewReader(pr, 1024)
			r.SetEndMarker("[DONE]")
			got := make(chan Event)
			go func() {
				for {
					e, err := r.Next()
					if err != nil {
						close(got)
						return
					}
					got <- e
				}
			}()
			write := func(s string) {
				_, err := io.WriteString(pw, s)
				require.NoError(t, err)
			}
			wait := func() Event {
				select {
				case e := <-got:
					return e
				case <-time.After(5 * time.Second):
					require.FailNow(t, "no event")
					return Event{}
				}
			}
			write("data: 1" + ending + ending)
			require.Equal(t, ev("", "1"), wait())
			write("data: [DONE]" + ending)
			require.Equal(t, ev("", "[DONE]"), wait())
			write("\n") // after "\r", ends that line, not another
			write("data: 2" + ending + ending)
			require.Equal(t, ev("", "2"), wait())
			require.NoError(t, pw.Close())
			_, open := <-got
			require.False(t, open)
		})
	}
}

func TestLongLines(t *testing.T) {
	t.Run("longer than the read buffer", func(t *testing.T) {
		long := strings.Repeat("x", 200<<10)
		r := NewReader(iotest.HalfReader(strings.NewReader("data: \""+long+"\"\r\n\r\n")), 1<<20)
		got, err := readAll(t, r)
		require.ErrorIs(t, err, io.EOF)
		require.Equal(t, []Event{ev("", `"`+long+`"`)}, got)
	})

	const limit = 20
	at := strings.Repeat("y", limit-len("data: "))
	over := at + "y"
	tests := []struct {
		name   string
		stream string
		want   []Event
		err    error
	}{
		{"line at the limit", "data: " + at + "\r\n\r\n", []Event{ev("", at)}, io.EOF},
		{"line over the limit", "data: 1\n\ndata: " + over + "\n\ndata: 2\n\n", []Event{ev("", "1")}, ErrTooLong},
		{"unterminated line over the limit", "data: " + over, nil, ErrTooLong},
		{"comment over the limit", ":" + strings.Repeat("c", limit) + "\n", nil, ErrTooLong},
		{"data at the limit", "data: 0123456789\ndata: 012345678\n\n", []Event{ev("", "0123456789\n012345678")}, io.EOF},
		{"data over the limit", "data: 0123456789\ndata: 0123456789\n\n", nil, ErrTooLong},
		{"line endings do not count", "data: " + at + "\r\n\r\n\r\r\n\n", []Event{ev("", at)}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, reader := range splits(tt.stream) {
				r := NewReader(reader(), limit)
				got, err := readAll(t, r)
				require.ErrorIs(t, err, tt.err, how)
				require.Equal(t, tt.want, got, how)
				_, err = r.Next()
				require.ErrorIs(t, err, tt.err, "%s: the error sticks", how)
			}
		})
	}

	t.Run("default limit", func(t *testing.T) {
		r := NewReader(strings.NewReader("data: "+strings.Repeat("z", 1<<20)+"\n\n"), 0)
		_, err := r.Next()
		require.ErrorIs(t, err, ErrTooLong)
	})
}

func TestReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := NewReader(io.MultiReader(
		strings.NewReader("data: 1\n\ndata: cut"),
		iotest.ErrReader(boom),
	), 1024)
	e, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, ev("", "1"), e)
	e, err = r.Next()
	require.ErrorIs(t, err, boom, "the pending event is dropped")
	require.Zero(t, e)
	_, err = r.Next()
	require.ErrorIs(t, err, boom)
}

func TestDataIsTheCallers(t *testing.T) {
	r := NewReader(strings.NewReader("data: first\n\ndata: second\n\n"), 1024)
	first, err := r.Next()
	require.NoError(t, err)
	second, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, "first", string(first.Data))
	require.Equal(t, "second", string(second.Data))
}
