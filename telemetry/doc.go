// Package telemetry records what every run did and how long it took: a span
// model independent of where spans are stored, W3C trace-context ids, a
// non-blocking batching recorder that never slows a run, the sinks' and
// readers' interfaces, and Prometheus metrics.
//
// Spans are derived from a run's typed events (see engine/event), so the engine
// needs no tracing code: the HTTP layer feeds each run's events to a Trace and
// records the spans it builds when the run ends.
package telemetry
