package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/sse"
)

// doneMarker is the data of the event that ends an OpenAI stream.
const doneMarker = "[DONE]"

// readStream reads a server-sent-event stream of chat completion chunks,
// calling onDelta for each piece of content, and assembles the Response.
func (c *Client) readStream(ctx context.Context, body io.Reader, onDelta func(model.Delta)) (*model.Response, error) {
	st := &streamState{c: c, onDelta: onDelta, byIndex: map[int]*partialCall{}}
	events := sse.NewReader(body, maxResponseBytes)
	events.SetEndMarker(doneMarker)
	for !st.done {
		ev, err := events.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, model.TransportError(ctx, c.name, err)
			}
			if errors.Is(err, sse.ErrTooLong) {
				return nil, c.protocolError("stream event too large", nil)
			}
			if st.finish != "" {
				// The answer is complete; only the usage chunk or [DONE]
				// was lost with the connection.
				break
			}
			return nil, model.TransportError(ctx, c.name, err)
		}
		if string(ev.Data) == doneMarker {
			st.done = true
			break
		}
		if err := st.add(ev.Data, !ev.Truncated); err != nil {
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

	content   strings.Builder
	reasoning strings.Builder
	calls     []*partialCall       // in order of first appearance
	byIndex   map[int]*partialCall // calls by their stream index
	finish    string               // the last finish_reason seen
	usage     model.Usage
	model     string
	done      bool // [DONE] received
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
			return chunk.Error.ModelError(st.c.name, st.c.redact)
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
	if text := d.reasoning(); text != "" {
		st.reasoning.WriteString(text)
		st.onDelta(model.Delta{Reasoning: text})
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
		Reasoning:  st.reasoning.String(),
	}
}
