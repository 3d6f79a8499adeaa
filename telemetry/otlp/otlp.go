// Package otlp exports runs' spans to an OpenTelemetry collector over OTLP
// (gRPC or HTTP/protobuf), beside the SQL or ClickHouse trace store, with
// the OpenTelemetry GenAI semantic conventions and OpenInference attributes,
// and mirrors the key run metrics through the OTLP metric exporter.
//
// Spans are built by telemetry.Trace as they are for every sink; this
// package converts them to OTLP protobuf and sends them with the official
// exporters' clients (otlptracegrpc, otlptracehttp), which read the
// standard OTEL_EXPORTER_OTLP_* variables. Export is
// asynchronous and bounded: an Exporter queues spans in a telemetry.Recorder
// (a bounded batching queue with backoff) so a collector that is slow or
// down costs runs nothing but counted drops.
package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/troupehq/troupe/telemetry"
)

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL this package speaks.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Options configure an Exporter. Unset fields come from the standard
// OTEL_* variables (read through Getenv), as every OpenTelemetry SDK does.
type Options struct {
	// Endpoint is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT
	// (http://host:4318, where HTTP export posts to /v1/traces, or
	// http://host:4317 for gRPC); empty takes OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// or OTEL_EXPORTER_OTLP_ENDPOINT, which the exporters read themselves.
	Endpoint string
	// Protocol is grpc or http/protobuf; empty takes
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL,
	// then http/protobuf (the specification's default).
	Protocol string
	// ServiceName names this server in the collector; empty takes
	// OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES), else "troupe".
	ServiceName string
	// Recorder bounds the export queue and batches (its Sink is set here).
	Recorder telemetry.RecorderOptions
	Getenv   func(string) string
	Logger   *slog.Logger
}

// OwnTraceIDAttribute holds, on an exported run's root span, the id of
// the run's trace in the trace store (the console's and the trace API's),
// which differs from the exported trace id when the caller sent a
// traceparent.
const OwnTraceIDAttribute = "troupe.trace_id"

// Enabled reports whether the environment asks for OTLP export (an
// endpoint variable is set).
func Enabled(getenv func(string) string) bool {
	return getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// Exporter sends spans to an OTLP collector. Record is the only call on a
// run's path: it rewrites ids (see Record) and queues.
type Exporter struct {
	rec  *telemetry.Recorder
	sink *sink
}

// New builds an exporter; call Run to start sending and Shutdown when done.
// It opens no connection: an unreachable collector fails writes, not New.
func New(ctx context.Context, o Options) (*Exporter, error) {
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	protocol := o.Protocol
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if protocol == "" {
			protocol = o.Getenv(v)
		}
	}
	if protocol == "" {
		protocol = ProtocolHTTP
	}
	var client otlptrace.Client
	switch protocol {
	case ProtocolGRPC:
		// No retries in the exporter: the recorder backs off and drops
		// (counted) instead, so a failed batch never holds the queue.
		opts := []otlptracegrpc.Option{otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})}
		if o.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(o.Endpoint))
		}
		client = otlptracegrpc.NewClient(opts...)
	case ProtocolHTTP:
		opts := []otlptracehttp.Option{otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})}
		if o.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(tracesURL(o.Endpoint)))
		}
		client = otlptracehttp.NewClient(opts...)
	default:
		return nil, fmt.Errorf("OTLP protocol %q: use grpc or http/protobuf", protocol)
	}
	if err := client.Start(ctx); err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := newResource(ctx, o.ServiceName)
	if err != nil {
		return nil, err
	}
	s := &sink{client: client, res: resourceOf(res)}
	ro := o.Recorder
	ro.Sink = s
	if ro.Logger == nil {
		ro.Logger = o.Logger
	}
	return &Exporter{rec: telemetry.NewRecorder(ro), sink: s}, nil
}

// newResource describes this server: service.name "troupe" unless name or
// OTEL_SERVICE_NAME says otherwise, OTEL_RESOURCE_ATTRIBUTES, and the SDK.
func newResource(ctx context.Context, name string) (*resource.Resource, error) {
	opts := []resource.Option{resource.WithAttributes(attribute.String("service.name", "troupe")), resource.WithTelemetrySDK(), resource.WithFromEnv()}
	if name != "" {
		opts = append(opts, resource.WithAttributes(attribute.String("service.name", name)))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil && res == nil {
		return nil, fmt.Errorf("OTLP resource (check OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	return res, nil
}

// Run sends queued spans until ctx ends, then flushes what is queued.
func (e *Exporter) Run(ctx context.Context) error { return e.rec.Run(ctx) }

// Shutdown closes the exporter's connection (after Run returned).
func (e *Exporter) Shutdown(ctx context.Context) error { return e.sink.client.Stop(ctx) }

// Stats returns the queue depth and the spans dropped (queue full, or a
// failed export) and sent so far.
func (e *Exporter) Stats() (queued int, dropped, sent uint64) { return e.rec.Stats() }

// Record queues the spans of one trace (a run's, root first, as the
// tracer records them) without blocking.
//
// A run whose caller sent a traceparent joins the caller's trace here: its
// spans carry the caller's trace id and its root the caller's span as
// parent, so the collector shows the run inside the caller's trace. The
// trace store keeps the run's own trace id (see telemetry.NewTrace for
// why); the root carries it as troupe.trace_id to find it there.
func (e *Exporter) Record(spans ...telemetry.Span) { e.rec.Record(join(spans)...) }

// join returns a run's spans in the trace of the caller's span its root
// links to, if any (see Record); spans as they are otherwise.
func join(spans []telemetry.Span) []telemetry.Span {
	if len(spans) == 0 {
		return spans
	}
	root := spans[0]
	link, linkSpan := root.Attributes[telemetry.LinkTraceIDAttribute], root.Attributes[telemetry.LinkSpanIDAttribute]
	if link == "" || root.Attributes[telemetry.LinkKindAttribute] == telemetry.LinkEarlier {
		return spans
	}
	own := root.TraceID
	joined := make([]telemetry.Span, len(spans))
	copy(joined, spans)
	for i := range joined {
		if joined[i].TraceID == own {
			joined[i].TraceID = link
			if joined[i].ParentID == "" && joined[i].SpanID == root.SpanID {
				joined[i].ParentID = linkSpan
				// The span's attributes are the trace store's too: a copy
				// names the run's own trace.
				attrs := maps.Clone(joined[i].Attributes)
				attrs[OwnTraceIDAttribute] = own
				joined[i].Attributes = attrs
			}
		}
	}
	return joined
}

// sink writes batches through the official exporter's client.
type sink struct {
	client otlptrace.Client
	res    *resourcepb.Resource
	b      batch // reused by each Write: the recorder writes one batch at a time
}

var _ telemetry.Sink = (*sink)(nil)

func (s *sink) Write(ctx context.Context, spans []telemetry.Span) error {
	b := &s.b
	b.reset(spans)
	out := make([]*tracepb.Span, 0, len(spans))
	var bad error
	for i := range spans {
		sp, err := b.span(i, &spans[i])
		if err != nil {
			bad = errors.Join(bad, err)
			continue
		}
		out = append(out, sp)
	}
	if len(out) == 0 {
		return bad
	}
	rs := &tracepb.ResourceSpans{Resource: s.res, ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: scopeName}, Spans: out}}}
	if err := s.client.UploadTraces(ctx, []*tracepb.ResourceSpans{rs}); err != nil {
		return fmt.Errorf("OTLP export of %d spans: %w", len(out), err)
	}
	return nil
}

// tracesURL adds the traces path to a base URL without one, as
// OTEL_EXPORTER_OTLP_ENDPOINT is read.
func tracesURL(base string) string {
	u, err := url.Parse(base)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return base
	}
	u.Path = "/v1/traces"
	return u.String()
}
