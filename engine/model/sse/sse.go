// Package sse decodes server-sent event streams (text/event-stream), the
// format in which model vendors stream their answers. The vendor adapters
// (openai, anthropic) share this one decoder instead of each carrying its own
// line parser, so quirks of the format — line endings, comments, read splits,
// a final event cut off by the end of the stream — are handled in one place.
//
// Decoding follows the WHATWG HTML specification ("Server-sent events",
// interpreting an event stream), with two additions the adapters need: an
// event cut off by the end of the stream is returned, marked Truncated,
// instead of being dropped, and an end marker such as OpenAI's
// "data: [DONE]" can be returned without waiting for the blank line that
// would end its event.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// ErrTooLong reports a line, or the data of one event, longer than the
// limit given to NewReader.
var ErrTooLong = errors.New("sse: line or event data too long")

// defaultMaxLine is the limit used when NewReader is given none.
const defaultMaxLine = 1 << 20

// Event is one dispatched event.
type Event struct {
	Name string // from "event:" lines; empty when the stream sent none
	Data []byte // "data:" lines joined with "\n"; never empty

	// Truncated reports an event cut off by the end of the stream: it was
	// not followed by the blank line that ends an event, and its last line
	// may be incomplete.
	Truncated bool
}

// Reader reads events from a text/event-stream. It is not safe for
// concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int
	marker  string // see SetEndMarker; "" when unset
	line    []byte // the line being read, reused
	skipLF  bool   // the last line ended in "\r": a following "\n" belongs to it
	started bool   // the first line (and a leading byte order mark) was read
	err     error  // the error that ended reading, returned from then on

	// The pending event.
	name       string
	data       []byte // each data line followed by "\n"
	markerNext bool   // the end marker is to be returned by the next call
}

// NewReader returns a Reader of r. maxLine bounds one line in bytes, without
// its line ending, and also the data of one event, so that a misbehaving
// server cannot exhaust memory; a longer line or event is ErrTooLong.
// maxLine <= 0 selects a limit of 1 MiB.
func NewReader(r io.Reader, maxLine int) *Reader {
	if maxLine <= 0 {
		maxLine = defaultMaxLine
	}
	return &Reader{br: bufio.NewReaderSize(r, min(64<<10, maxLine+2)), max: maxLine}
}

// SetEndMarker makes a "data:" line whose value is exactly marker an event
// of its own, returned at once without waiting for a blank line, as servers
// that end a stream with "data: [DONE]" sometimes omit the blank line before
// or after it. Data already pending is first returned as a complete event,
// and the marker event (then without a Name) follows on the next call.
// Reading may continue after the marker. An empty marker turns this off.
func (r *Reader) SetEndMarker(marker string) {
	r.marker = marker
}

// Next returns the next event. A blank line ends (dispatches) an event; an
// event without data lines is not dispatched. Comment lines (starting with
// ":") are skipped, and "id:", "retry:" and unknown fields are ignored. One
// space after a field's colon is stripped. Lines may end in "\n", "\r\n" or
// "\r", and the stream may arrive split across reads at any byte.
//
// At the end of the stream Next returns io.EOF, but an event with data that
// was not yet ended by a blank line is returned first, with Truncated set. A
// read error other than io.EOF drops the pending event and is returned as
// is. Once Next has returned an error it returns that error again.
func (r *Reader) Next() (Event, error) {
	if r.markerNext {
		r.markerNext = false
		return Event{Data: []byte(r.marker)}, nil
	}
	if r.err != nil {
		return Event{}, r.err
	}
	for {
		line, err := r.readLine()
		if err != nil {
			r.err = err
			if err == io.EOF {
				if ev, ok := r.dispatch(); ok {
					ev.Truncated = true
					return ev, nil
				}
			}
			r.name, r.data = "", nil
			return Event{}, err
		}
		if len(line) == 0 {
			if ev, ok := r.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value, _ := bytes.Cut(line, []byte(":")) // no colon: the whole line names a field with no value
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			r.name = string(value)
		case "data":
			if r.marker != "" && string(value) == r.marker {
				name := r.name
				if ev, ok := r.dispatch(); ok {
					r.markerNext = true
					return ev, nil
				}
				return Event{Name: name, Data: []byte(r.marker)}, nil
			}
			if len(r.data)+len(value) > r.max {
				r.err = ErrTooLong
				r.name, r.data = "", nil
				return Event{}, r.err
			}
			r.data = append(r.data, value...)
			r.data = append(r.data, '\n')
		}
		// "id", "retry" and unknown fields are ignored.
	}
}

// dispatch returns the pending event, if it has data, and starts a new one.
func (r *Reader) dispatch() (Event, bool) {
	ev := Event{Name: r.name}
	ok := len(r.data) > 1 // more than the "\n" of one empty data line
	if ok {
		ev.Data = r.data[:len(r.data)-1]
	}
	r.name, r.data = "", nil
	return ev, ok
}

// readLine returns the next line without its line ending. The slice is
// valid until the next call. A last line without a line ending is returned
// before io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		if _, err := r.br.Peek(1); err != nil { // waits for at least one byte
			if err == io.EOF && len(r.line) > 0 {
				return r.firstLine(r.line), nil
			}
			return nil, err
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		if r.skipLF {
			r.skipLF = false
			if buf[0] == '\n' {
				_, _ = r.br.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(r.line)+len(buf) > r.max {
				return nil, ErrTooLong
			}
			r.line = append(r.line, buf...)
			_, _ = r.br.Discard(len(buf))
			continue
		}
		if len(r.line)+i > r.max {
			return nil, ErrTooLong
		}
		r.line = append(r.line, buf[:i]...)
		r.skipLF = buf[i] == '\r'
		_, _ = r.br.Discard(i + 1)
		return r.firstLine(r.line), nil
	}
}

// firstLine strips a UTF-8 byte order mark from the start of the stream.
func (r *Reader) firstLine(line []byte) []byte {
	if r.started {
		return line
	}
	r.started = true
	return bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
}
