package otlp

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
)

// Metrics mirrors the key run metrics of the Prometheus endpoint through
// the OTLP metric exporter: runs by target and status (troupe.runs), run
// durations (troupe.run.duration) and tokens by type
// (gen_ai.client.token.usage, the GenAI convention's). It is a
// session.Observer: the run service reports each run's end.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	runs     metric.Int64Counter
	duration metric.Float64Histogram
	tokens   metric.Int64Histogram
}

var (
	_ session.Observer    = (*Metrics)(nil)
	_ session.RunObserver = (*metricsRun)(nil)
)

// MetricsOptions configure NewMetrics; Endpoint, Protocol and ServiceName
// as Options'.
type MetricsOptions struct {
	Endpoint, Protocol, ServiceName string
	// Interval is how often metrics are exported (default 60s, or
	// OTEL_METRIC_EXPORT_INTERVAL as the SDK reads it).
	Interval time.Duration
	Getenv   func(string) string
}

// NewMetrics builds the OTLP metric pipeline; Shutdown flushes and stops
// it. It opens no connection: a collector that is down fails exports (the
// SDK logs them), never runs.
func NewMetrics(ctx context.Context, o MetricsOptions) (*Metrics, error) {
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	protocol := o.Protocol
	for _, v := range []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if protocol == "" {
			protocol = o.Getenv(v)
		}
	}
	var exp sdkmetric.Exporter
	var err error
	switch protocol {
	case ProtocolGRPC:
		var opts []otlpmetricgrpc.Option
		if o.Endpoint != "" {
			opts = append(opts, otlpmetricgrpc.WithEndpointURL(o.Endpoint))
		}
		exp, err = otlpmetricgrpc.New(ctx, opts...)
	case ProtocolHTTP, "":
		var opts []otlpmetrichttp.Option
		if o.Endpoint != "" {
			opts = append(opts, otlpmetrichttp.WithEndpointURL(metricsURL(o.Endpoint)))
		}
		exp, err = otlpmetrichttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("OTLP protocol %q: use grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP metric exporter: %w", err)
	}
	res, err := newResource(ctx, o.ServiceName)
	if err != nil {
		return nil, err
	}
	var readerOpts []sdkmetric.PeriodicReaderOption
	if o.Interval > 0 {
		readerOpts = append(readerOpts, sdkmetric.WithInterval(o.Interval))
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, readerOpts...)))
	meter := mp.Meter(scopeName)
	m := &Metrics{provider: mp}
	if m.runs, err = meter.Int64Counter("troupe.runs", metric.WithDescription("Runs finished, by kind, target and status."), metric.WithUnit("{run}")); err != nil {
		return nil, err
	}
	if m.duration, err = meter.Float64Histogram("troupe.run.duration", metric.WithDescription("How long runs took, by kind, target and status."), metric.WithUnit("s")); err != nil {
		return nil, err
	}
	if m.tokens, err = meter.Int64Histogram("gen_ai.client.token.usage", metric.WithDescription("Tokens a run used, by type (input or output)."), metric.WithUnit("{token}")); err != nil {
		return nil, err
	}
	return m, nil
}

// Shutdown exports what is left and stops the pipeline.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }

// RunStarted times the run.
func (m *Metrics) RunStarted(*session.Run, session.Link) session.RunObserver {
	return &metricsRun{m: m, start: time.Now()}
}

// RunInterrupted does nothing, as telemetry.Metrics does not.
func (m *Metrics) RunInterrupted(*session.Run) {}

type metricsRun struct {
	m     *Metrics
	start time.Time
}

func (*metricsRun) Event(event.Event)                             {}
func (*metricsRun) StoreSpan(string, time.Time, time.Time, error) {}

// RunFinished records the run: counted, timed and its tokens.
func (o *metricsRun) RunFinished(r *session.Run, _ string) {
	ctx := context.Background()
	attrs := metric.WithAttributes(attribute.String("troupe.kind", r.Type), attribute.String("gen_ai.agent.name", r.ComponentID),
		attribute.String("troupe.status", string(r.Status)))
	o.m.runs.Add(ctx, 1, attrs)
	o.m.duration.Record(ctx, time.Since(o.start).Seconds(), attrs)
	model := attribute.String("gen_ai.request.model", r.Model)
	if r.Metrics.InputTokens > 0 {
		o.m.tokens.Record(ctx, int64(r.Metrics.InputTokens), metric.WithAttributes(attribute.String("gen_ai.token.type", "input"), model))
	}
	if r.Metrics.OutputTokens > 0 {
		o.m.tokens.Record(ctx, int64(r.Metrics.OutputTokens), metric.WithAttributes(attribute.String("gen_ai.token.type", "output"), model))
	}
}

// metricsURL adds the metrics path to a base URL without one.
func metricsURL(base string) string {
	u, err := url.Parse(base)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return base
	}
	u.Path = "/v1/metrics"
	return u.String()
}
