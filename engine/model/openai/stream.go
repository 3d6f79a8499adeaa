package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/troupehq/troupe/engine/model"
)

// doneMarker is the data of the event that ends an OpenAI stream.
const doneMarker = "[DONE]"

// errEventTooLarge reports a streamed event over maxResponseBytes.
var errEventTooLarge = errors.New("stream event too large")

// readStream reads a server-sent-event stream of chat completion chunks,
// calling onDelta for each piece of content, and assembles the Response.
func (c *Client) readStream(ctx context.Context, body io.Reader, onDelta func(model.Delta)) (*model.Response, error) {
	st := &streamState{c: c, onDelta: onDelta, byIndex: map[int]*partialCall{}}
	events := newSSEReader(body)
	for !st.done {
		data, complete, err := events.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, model.TransportError(ctx, c.name, err)
			}
			if errors.Is(err, errEventTooLarge) {
				return nil, c.protocolError(err.Error(), nil)
			}
			if st.finish != "" {
				// The answer is complete; only the usage chunk or [DONE]
				// was lost with the connection.
				break
			}
			return nil, model.TransportError(ctx, c.name, err)
		}
		if string(data) == doneMarker {
			st.done = true
			break
		}
		if err := st.add(data, complete); err != nil {
			return nil, err
		}
	}
	if !st.done {
		if ctx.Err() != nil {
			// A cancelled ctx can surface as a plain end of stream when
			// the body is closed under the reader.
			return nil, model.TransportError(ctx, c.name, ctx.Err())
		}
		if st.finish == "" {
			// Without [DONE] or a finish_reason the answer may be cut
			// short; a server that omits only [DONE] is accepted.
			return nil, c.protocolError("stream ended early", nil)
		}
	}
	return st.response(), nil
}

// streamState accumulates a streamed answer.
type streamState struct {
	c       *Client
	onDelta func(model.Delta)

	content strings.Builder
	calls   []*partialCall       // in order of first appearance
	byIndex map[int]*partialCall // calls by their stream index
	finish  string               // the last finish_reason seen
	usage   model.Usage
	model   string
	done    bool // [DONE] received
}

// partialCall is a tool call being assembled from deltas.
type partialCall struct {
	index    int
	id, name string
	args     strings.Builder
}

// add applies one event's data. The data normally holds one JSON chunk, but
// servers that omit the blank line between events produce several in a row,
// so every JSON value in it is decoded. An incomplete event (cut off by the
// end of the stream) that does not parse is dropped; the caller then reports
// the stream as ended early.
func (st *streamState) add(data []byte, complete bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var chunk chatResponse
		err := dec.Decode(&chunk)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if !complete {
				return nil
			}
			return st.c.protocolError("invalid JSON in stream", err)
		}
		if chunk.Error != nil {
			return st.c.bodyError(chunk.Error)
		}
		st.apply(&chunk)
	}
}

// apply merges one chunk into the state.
func (st *streamState) apply(chunk *chatResponse) {
	if st.model == "" {
		st.model = chunk.Model
	}
	if chunk.Usage != nil {
		// Normally in a final chunk with no choices; some servers attach
		// it to the last content chunk instead.
		st.usage = chunk.Usage.model()
	}
	ch := chunk.choice()
	if ch == nil {
		return
	}
	if ch.FinishReason != "" {
		st.finish = ch.FinishReason
	}
	d := ch.Delta
	if d == nil {
		d = ch.Message // tolerated: a full message in a chunk
	}
	if d == nil {
		return
	}
	// A refusal (structured outputs) replaces the content and is shown the
	// same way, as in a non-streamed answer.
	for _, text := range []string{d.Content, d.Refusal} {
		if text != "" {
			st.content.WriteString(text)
			st.onDelta(model.Delta{Content: text})
		}
	}
	for _, tc := range d.ToolCalls {
		st.toolDelta(tc)
	}
}

// toolDelta merges a tool-call fragment. Fragments are matched by index: the
// first carries the id and the function name, later ones append to the
// arguments. Servers that repeat the id or name keep the first. Fragments
// without an index (a few servers send each call whole) are matched by id,
// or continue the latest call.
func (st *streamState) toolDelta(tc respToolCall) {
	var pc *partialCall
	switch {
	case tc.Index != nil:
		pc = st.byIndex[*tc.Index]
	case tc.ID != "":
		for _, p := range st.calls {
			if p.id == tc.ID {
				pc = p
			}
		}
	case len(st.calls) > 0:
		pc = st.calls[len(st.calls)-1]
	}
	if pc == nil {
		index := 0
		if tc.Index != nil {
			index = *tc.Index
		} else {
			for i := range st.byIndex {
				index = max(index, i+1)
			}
		}
		pc = &partialCall{index: index}
		st.calls = append(st.calls, pc)
		st.byIndex[index] = pc
	}
	if pc.id == "" {
		pc.id = tc.ID
	}
	if pc.name == "" {
		pc.name = tc.Function.Name
	}
	pc.args.WriteString(string(tc.Function.Arguments))
}

// response returns the assembled answer, tool calls in index order.
func (st *streamState) response() *model.Response {
	calls := slices.Clone(st.calls)
	slices.SortStableFunc(calls, func(a, b *partialCall) int { return a.index - b.index })
	var out []model.ToolCall
	for i, pc := range calls {
		out = append(out, toolCall(i, pc.id, pc.name, pc.args.String()))
	}
	return &model.Response{
		Content:    st.content.String(),
		ToolCalls:  out,
		Usage:      st.usage,
		StopReason: stopReason(st.finish, len(out) > 0),
		Model:      st.model,
	}
}

// sseReader reads server-sent events (the text/event-stream format) and
// returns the data of each event. Lines may arrive split across any number
// of reads and may end in "\n" or "\r\n". Comments (":") and fields other
// than data (event, id, retry) are ignored.
type sseReader struct {
	r        *bufio.Reader
	data     []byte // the pending event's data lines, joined by "\n"
	hasData  bool
	doneNext bool // a [DONE] line followed data with no blank line between
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the data of the next event. complete is false when the end of
// the stream cut the event off before its terminating blank line. A "data:
// [DONE]" line is always returned as an event of its own. next returns
// io.EOF at the end of the stream.
func (s *sseReader) next() (data []byte, complete bool, err error) {
	if s.doneNext {
		s.doneNext = false
		return []byte(doneMarker), true, nil
	}
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF && s.hasData {
				return s.take(), false, nil
			}
			return nil, false, err
		}
		if len(line) == 0 { // a blank line dispatches the event
			if s.hasData {
				return s.take(), true, nil
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" { // also skips comments: field is ""
			continue
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if string(value) == doneMarker {
			if s.hasData {
				s.doneNext = true
				return s.take(), true, nil
			}
			return []byte(doneMarker), true, nil
		}
		if len(s.data)+len(value)+1 > maxResponseBytes {
			return nil, false, errEventTooLarge
		}
		if s.hasData {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
		s.hasData = true
	}
}

// take returns the pending event data and resets it.
func (s *sseReader) take() []byte {
	d := s.data
	s.data, s.hasData = nil, false
	return d
}

// readLine returns the next line without its line ending. The slice is only
// valid until the next read. A final line without a line ending is returned
// before io.EOF.
func (s *sseReader) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			if len(buf) > maxResponseBytes {
				return nil, errEventTooLarge
			}
			line, err = s.r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}
