package otlp

import (
	"encoding/hex"
	"fmt"

	"go.opentelemetry.io/otel/sdk/resource"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/troupehq/troupe/telemetry"
)

// scopeName names the instrumentation that made the spans.
const scopeName = "github.com/troupehq/troupe/telemetry"

// GenAI semantic-convention and OpenInference attribute keys.
const (
	opName        = "gen_ai.operation.name"
	providerName  = "gen_ai.provider.name"
	requestModel  = "gen_ai.request.model"
	responseModel = "gen_ai.response.model"
	inputTokens   = "gen_ai.usage.input_tokens"
	outputTokens  = "gen_ai.usage.output_tokens"
	agentName     = "gen_ai.agent.name"
	toolName      = "gen_ai.tool.name"
	toolCallID    = "gen_ai.tool.call.id"
	conversation  = "gen_ai.conversation.id"
	oiKind        = "openinference.span.kind"
	oiModel       = "llm.model_name"
	oiInput       = "input.value"
	oiOutput      = "output.value"
)

// renamed are the stored attributes exported under their GenAI names
// only (model, provider, tool.name, tool.call_id), or not at all (marks
// that only the trace store reads): every attribute costs each export.
var renamed = map[string]bool{"model": true, "provider": true, "tool.name": true, "tool.call_id": true, telemetry.RootAttribute: true}

// extraAttrs bounds the attributes convert adds to a span's stored ones.
const extraAttrs = 14

// batch builds the OTLP protobuf of a batch of spans. Messages are
// allocated in slabs sized for the batch up front, a few allocations per
// batch instead of three per attribute: export runs for every span, and
// the SDK's own conversion (its ReadOnlySpan, then the protobuf) costs
// several times more.
type batch struct {
	spans []tracepb.Span
	kvs   []commonpb.KeyValue
	vals  []commonpb.AnyValue
	strs  []commonpb.AnyValue_StringValue
	ints  []commonpb.AnyValue_IntValue
	ids   []byte
	nkv   int
	attrs []*commonpb.KeyValue // the current span's, a window of all
}

// reset readies b for spans, reusing its slabs when they are large
// enough: the sink writes one batch at a time, and once UploadTraces
// returns, the batch's messages have been encoded and are garbage.
func (b *batch) reset(spans []telemetry.Span) {
	n := 0
	for i := range spans {
		n += len(spans[i].Attributes) + extraAttrs
	}
	if len(b.spans) < len(spans) {
		b.spans = make([]tracepb.Span, len(spans))
	} else {
		clear(b.spans)
	}
	if len(b.kvs) < n {
		b.kvs, b.vals = make([]commonpb.KeyValue, n), make([]commonpb.AnyValue, n)
		b.strs, b.attrs = make([]commonpb.AnyValue_StringValue, 0, n), make([]*commonpb.KeyValue, 0, n)
	} else {
		clear(b.kvs[:b.nkv])
		clear(b.vals[:b.nkv])
		clear(b.strs)
		clear(b.attrs)
	}
	if cap(b.ints) < 4*len(spans) {
		b.ints = make([]commonpb.AnyValue_IntValue, 0, 4*len(spans))
	}
	if cap(b.ids) < 40*len(spans) {
		b.ids = make([]byte, 0, 40*len(spans))
	}
	b.strs, b.attrs, b.ints, b.ids, b.nkv = b.strs[:0], b.attrs[:0], b.ints[:0], b.ids[:0], 0
}

func (b *batch) next() *commonpb.KeyValue {
	kv, v := &b.kvs[b.nkv], &b.vals[b.nkv]
	b.nkv++
	kv.Value = v
	b.attrs = append(b.attrs, kv)
	return kv
}

func (b *batch) str(k, v string) {
	if b.nkv == len(b.kvs) {
		return // the bound above is never reached
	}
	kv := b.next()
	kv.Key = k
	b.strs = append(b.strs, commonpb.AnyValue_StringValue{StringValue: v})
	kv.Value.Value = &b.strs[len(b.strs)-1]
}

func (b *batch) int(k string, v int) {
	if b.nkv == len(b.kvs) || len(b.ints) == cap(b.ints) {
		return
	}
	kv := b.next()
	kv.Key = k
	b.ints = append(b.ints, commonpb.AnyValue_IntValue{IntValue: int64(v)})
	kv.Value.Value = &b.ints[len(b.ints)-1]
}

// id decodes a hex id of n bytes into the batch's id slab.
func (b *batch) id(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("id %q: want %d hex digits", s, 2*n)
	}
	start := len(b.ids)
	if start+n > cap(b.ids) {
		b.ids = make([]byte, 0, 40*16) // a later batch of ids; those taken keep the old slab
		start = 0
	}
	b.ids = b.ids[:start+n]
	if _, err := hex.Decode(b.ids[start:], []byte(s)); err != nil {
		return nil, fmt.Errorf("id %q: %w", s, err)
	}
	return b.ids[start : start+n : start+n], nil
}

// span converts one stored span: GenAI names ("chat {model}",
// "execute_tool {tool}", "invoke_agent {agent}") and attributes,
// OpenInference attributes for Phoenix and Langfuse, and the attributes
// the trace store keeps.
func (b *batch) span(i int, s *telemetry.Span) (*tracepb.Span, error) {
	out := &b.spans[i]
	var err error
	if out.TraceId, err = b.id(s.TraceID, 16); err != nil {
		return nil, err
	}
	if out.SpanId, err = b.id(s.SpanID, 8); err != nil {
		return nil, err
	}
	if s.ParentID != "" {
		if out.ParentSpanId, err = b.id(s.ParentID, 8); err != nil {
			return nil, err
		}
	}
	out.Name, out.Kind = s.Name, tracepb.Span_SPAN_KIND_INTERNAL
	out.StartTimeUnixNano, out.EndTimeUnixNano = uint64(s.Start.UnixNano()), uint64(s.End.UnixNano())
	// Sampled (the W3C flag), and whether the parent is remote is known:
	// it is for a run's root under the caller's span (see join).
	out.Flags = 0x101
	if s.ParentID != "" && s.Attributes[OwnTraceIDAttribute] != "" {
		out.Flags |= 0x200
	}
	if s.Status == telemetry.StatusError {
		out.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: s.StatusMessage}
	}
	start := len(b.attrs)
	a := s.Attributes
	for k, v := range a {
		if !renamed[k] && v != "" {
			b.str(k, v)
		}
	}
	if s.Kind == telemetry.KindRun {
		// Who and which conversation, on the run spans only: the spans
		// inside a run share them, and every attribute costs each export.
		if s.RunID != "" {
			b.str("troupe.run_id", s.RunID)
		}
		if s.SessionID != "" {
			b.str(conversation, s.SessionID)
		}
		if s.UserID != "" {
			b.str("user.id", s.UserID)
		}
	}
	if a[telemetry.RootAttribute] == "true" && a[OwnTraceIDAttribute] == "" {
		// The trace store's id of this run's trace (the same here: no
		// caller's traceparent joined).
		b.str(OwnTraceIDAttribute, s.TraceID)
	}
	if s.Kind == telemetry.KindModel || s.InputTokens > 0 || s.OutputTokens > 0 {
		// A model request always reports its usage (zero included); a run
		// its total when it made any.
		b.int(inputTokens, s.InputTokens)
		b.int(outputTokens, s.OutputTokens)
	}
	switch s.Kind {
	case telemetry.KindModel:
		out.Kind = tracepb.Span_SPAN_KIND_CLIENT
		out.Name = "chat " + a["model"]
		b.str(opName, "chat")
		b.str(providerName, a["provider"])
		b.str(requestModel, a["model"])
		b.str(responseModel, a["model"])
		b.str(oiKind, "LLM")
		b.str(oiModel, a["model"])
		if v := a[telemetry.InputMessagesAttribute]; v != "" {
			b.str(oiInput, v)
		}
		if v := a[telemetry.OutputMessagesAttribute]; v != "" {
			b.str(oiOutput, v)
		}
	case telemetry.KindTool, telemetry.KindKnowledge:
		out.Name = "execute_tool " + a["tool.name"]
		b.str(opName, "execute_tool")
		b.str(toolName, a["tool.name"])
		if id := a["tool.call_id"]; id != "" {
			b.str(toolCallID, id)
		}
		kind := "TOOL"
		if s.Kind == telemetry.KindKnowledge {
			kind = "RETRIEVER"
		}
		b.str(oiKind, kind)
		b.str(oiInput, a["tool.arguments"])
		b.str(oiOutput, a["tool.result"])
	case telemetry.KindRun:
		name := s.AgentID
		if name == "" {
			name = s.TeamID
		}
		if m := a["troupe.member"]; m != "" {
			name = m
		}
		out.Name = "invoke_agent " + name
		b.str(opName, "invoke_agent")
		b.str(agentName, name)
		b.str(oiKind, "AGENT")
		if v := a["provider"]; v != "" {
			b.str(providerName, v)
		}
		if v := a["model"]; v != "" {
			b.str(requestModel, v)
		}
		if v := a[telemetry.InputAttribute]; v != "" {
			b.str(oiInput, v)
		}
	case telemetry.KindGuardrail:
		b.str(oiKind, "GUARDRAIL")
	default:
		b.str(oiKind, "CHAIN")
	}
	if t, sp := a[telemetry.LinkTraceIDAttribute], a[telemetry.LinkSpanIDAttribute]; t != "" && a[telemetry.LinkKindAttribute] == telemetry.LinkEarlier {
		// A continued workflow run: linked to the execution before it.
		lt, err1 := b.id(t, 16)
		ls, err2 := b.id(sp, 8)
		if err1 == nil && err2 == nil {
			out.Links = []*tracepb.Span_Link{{TraceId: lt, SpanId: ls, Flags: 0x101}}
		}
	}
	out.Attributes = b.attrs[start:len(b.attrs):len(b.attrs)]
	return out, nil
}

// resourceOf converts the SDK's resource (service.name and the rest).
func resourceOf(res *resource.Resource) *resourcepb.Resource {
	out := &resourcepb.Resource{}
	for _, kv := range res.Attributes() {
		out.Attributes = append(out.Attributes, &commonpb.KeyValue{Key: string(kv.Key),
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: kv.Value.Emit()}}})
	}
	return out
}
