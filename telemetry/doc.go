// Package telemetry will record traces of every run and expose metrics, with
// sinks in SQL (default) and ClickHouse. It is empty until the telemetry
// milestone lands.
package telemetry
