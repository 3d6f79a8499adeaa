package telemetry

import "github.com/prometheus/client_golang/prometheus"

// MustRegister adds collectors other packages own (the rate limiter's
// counter) to the metrics' registry, so /metrics/prometheus serves them
// too. It panics on a duplicate, a wiring bug.
func (m *Metrics) MustRegister(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }
