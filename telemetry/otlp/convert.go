package otlp

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupehq/troupe/telemetry"
)

// scope names the instrumentation that made the spans.
var scope = instrumentation.Scope{Name: "github.com/troupehq/troupe/telemetry"}

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

// convert turns a stored span into the SDK's read-only span: GenAI names
// ("chat {model}", "execute_tool {tool}", "invoke_agent {agent}") and
// attributes, OpenInference attributes for Phoenix and Langfuse, and every
// attribute the trace store keeps.
func convert(s *telemetry.Span, res *resource.Resource) (sdktrace.ReadOnlySpan, error) {
	var tid trace.TraceID
	var sid, pid trace.SpanID
	if err := parseID(tid[:], s.TraceID); err != nil {
		return nil, err
	}
	if err := parseID(sid[:], s.SpanID); err != nil {
		return nil, err
	}
	r := &span{name: s.Name, start: s.Start, end: s.End, res: res, kind: trace.SpanKindInternal}
	r.sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	if s.ParentID != "" {
		if err := parseID(pid[:], s.ParentID); err == nil {
			r.parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: pid, TraceFlags: trace.FlagsSampled, Remote: s.Attributes[telemetry.RootAttribute] == "true"})
		}
	}
	if s.Status == telemetry.StatusError {
		r.status = sdktrace.Status{Code: codes.Error, Description: s.StatusMessage}
	}
	a := s.Attributes
	attrs := make([]attribute.KeyValue, 0, len(a)+12)
	for k, v := range a {
		attrs = append(attrs, attribute.String(k, v))
	}
	attrs = append(attrs, attribute.String("troupe.span_kind", s.Kind))
	if s.RunID != "" {
		attrs = append(attrs, attribute.String("troupe.run_id", s.RunID))
	}
	if s.SessionID != "" {
		attrs = append(attrs, attribute.String(conversation, s.SessionID), attribute.String("session.id", s.SessionID))
	}
	if s.UserID != "" {
		attrs = append(attrs, attribute.String("user.id", s.UserID))
	}
	if a[telemetry.RootAttribute] == "true" && a[OwnTraceIDAttribute] == "" {
		// The trace store's id of this run's trace, which may differ from
		// the exported one (a caller's traceparent).
		attrs = append(attrs, attribute.String(OwnTraceIDAttribute, s.TraceID))
	}
	if s.Kind == telemetry.KindModel || s.InputTokens > 0 || s.OutputTokens > 0 {
		// A model request always reports its usage (zero included); a run
		// its total when it made any.
		attrs = append(attrs, attribute.Int(inputTokens, s.InputTokens), attribute.Int(outputTokens, s.OutputTokens),
			attribute.Int("llm.token_count.prompt", s.InputTokens), attribute.Int("llm.token_count.completion", s.OutputTokens))
	}
	switch s.Kind {
	case telemetry.KindModel:
		r.kind = trace.SpanKindClient
		r.name = "chat " + a["model"]
		attrs = append(attrs, attribute.String(opName, "chat"), attribute.String(providerName, a["provider"]),
			attribute.String(requestModel, a["model"]), attribute.String(responseModel, a["model"]),
			attribute.String(oiKind, "LLM"), attribute.String(oiModel, a["model"]), attribute.String("llm.provider", a["provider"]))
		if v := a[telemetry.InputMessagesAttribute]; v != "" {
			attrs = append(attrs, attribute.String(oiInput, v), attribute.String("input.mime_type", "application/json"))
		}
		if v := a[telemetry.OutputMessagesAttribute]; v != "" {
			attrs = append(attrs, attribute.String(oiOutput, v), attribute.String("output.mime_type", "application/json"))
		}
	case telemetry.KindTool, telemetry.KindKnowledge:
		r.name = "execute_tool " + a["tool.name"]
		attrs = append(attrs, attribute.String(opName, "execute_tool"), attribute.String(toolName, a["tool.name"]), attribute.String("gen_ai.tool.type", "function"))
		if id := a["tool.call_id"]; id != "" {
			attrs = append(attrs, attribute.String(toolCallID, id))
		}
		kind := "TOOL"
		if s.Kind == telemetry.KindKnowledge {
			kind = "RETRIEVER"
		}
		attrs = append(attrs, attribute.String(oiKind, kind), attribute.String("tool.parameters", a["tool.arguments"]),
			attribute.String(oiInput, a["tool.arguments"]), attribute.String(oiOutput, a["tool.result"]))
	case telemetry.KindRun:
		name := s.AgentID
		if name == "" {
			name = s.TeamID
		}
		if m := a["troupe.member"]; m != "" {
			name = m
		}
		r.name = "invoke_agent " + name
		attrs = append(attrs, attribute.String(opName, "invoke_agent"), attribute.String(agentName, name), attribute.String(oiKind, "AGENT"))
		if v := a["provider"]; v != "" {
			attrs = append(attrs, attribute.String(providerName, v))
		}
		if v := a["model"]; v != "" {
			attrs = append(attrs, attribute.String(requestModel, v))
		}
		if v := a[telemetry.InputAttribute]; v != "" {
			attrs = append(attrs, attribute.String(oiInput, v))
		}
	case telemetry.KindGuardrail:
		attrs = append(attrs, attribute.String(oiKind, "GUARDRAIL"))
	default:
		attrs = append(attrs, attribute.String(oiKind, "CHAIN"))
	}
	if t, sp := a[telemetry.LinkTraceIDAttribute], a[telemetry.LinkSpanIDAttribute]; t != "" && a[telemetry.LinkKindAttribute] == telemetry.LinkEarlier {
		// A continued workflow run: linked to the execution before it.
		var lt trace.TraceID
		var ls trace.SpanID
		if parseID(lt[:], t) == nil && parseID(ls[:], sp) == nil {
			r.links = []sdktrace.Link{{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: lt, SpanID: ls, TraceFlags: trace.FlagsSampled})}}
		}
	}
	r.attrs = attrs
	return r, nil
}

// span is a finished span as the SDK's exporters read it. The embedded
// interface is never called: it only supplies ReadOnlySpan's unexported
// method, which keeps implementations inside the SDK otherwise.
type span struct {
	sdktrace.ReadOnlySpan
	name       string
	sc, parent trace.SpanContext
	kind       trace.SpanKind
	start, end time.Time
	attrs      []attribute.KeyValue
	links      []sdktrace.Link
	status     sdktrace.Status
	res        *resource.Resource
}

func (s *span) Name() string                                    { return s.name }
func (s *span) SpanContext() trace.SpanContext                  { return s.sc }
func (s *span) Parent() trace.SpanContext                       { return s.parent }
func (s *span) SpanKind() trace.SpanKind                        { return s.kind }
func (s *span) StartTime() time.Time                            { return s.start }
func (s *span) EndTime() time.Time                              { return s.end }
func (s *span) Attributes() []attribute.KeyValue                { return s.attrs }
func (s *span) Links() []sdktrace.Link                          { return s.links }
func (s *span) Events() []sdktrace.Event                        { return nil }
func (s *span) Status() sdktrace.Status                         { return s.status }
func (s *span) InstrumentationScope() instrumentation.Scope     { return scope }
func (s *span) InstrumentationLibrary() instrumentation.Library { return scope }
func (s *span) Resource() *resource.Resource                    { return s.res }
func (s *span) DroppedAttributes() int                          { return 0 }
func (s *span) DroppedLinks() int                               { return 0 }
func (s *span) DroppedEvents() int                              { return 0 }
func (s *span) ChildSpanCount() int                             { return 0 }

var _ sdktrace.ReadOnlySpan = (*span)(nil)
