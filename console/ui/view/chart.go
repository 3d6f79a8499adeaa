package view

import (
	"strconv"
	"strings"
	"time"

	"github.com/troupehq/troupe/store"
)

// The activity chart's drawing area, in SVG user units.
const (
	chartW, chartH = 600.0, 140.0
	chartTop       = 10.0
)

// bar is one interval of the activity chart.
type bar struct {
	X, W             float64
	OkY, OkH         float64 // successful (or unfinished) runs
	ErrY, ErrH       float64 // failed runs, stacked on top
	Title            string  // tooltip
	HasRuns, HasErrs bool
}

// chart lays out activity buckets: bars of runs (errors stacked in red) and a
// line of mean latency scaled to its own maximum.
type chart struct {
	Bars       []bar
	Line       string // polyline points of mean latency
	MaxRuns    int
	MaxLatency time.Duration
	Runs       int
	Errors     int
}

func newChart(buckets []store.ActivityBucket) chart {
	c := chart{}
	if len(buckets) == 0 {
		return c
	}
	for _, b := range buckets {
		c.MaxRuns = max(c.MaxRuns, b.Runs)
		c.MaxLatency = max(c.MaxLatency, b.AvgLatency)
		c.Runs += b.Runs
		c.Errors += b.Errors
	}
	slot := chartW / float64(len(buckets))
	h := chartH - chartTop
	var pts []string
	for i, b := range buckets {
		x := float64(i) * slot
		br := bar{X: x + slot*0.1, W: slot * 0.8, HasRuns: b.Runs > 0, HasErrs: b.Errors > 0}
		if c.MaxRuns > 0 {
			errH := h * float64(b.Errors) / float64(c.MaxRuns)
			okH := h * float64(b.Runs-b.Errors) / float64(c.MaxRuns)
			br.OkY, br.OkH = chartH-okH, okH
			br.ErrY, br.ErrH = chartH-okH-errH, errH
		}
		br.Title = b.Start.UTC().Format("15:04") + ": " + strconv.Itoa(b.Runs) + " runs, " + strconv.Itoa(b.Errors) + " errors"
		if b.Finished > 0 {
			br.Title += ", mean " + dur(b.AvgLatency) + ", max " + dur(b.MaxLatency)
		}
		c.Bars = append(c.Bars, br)
		if b.Finished > 0 && c.MaxLatency > 0 {
			y := chartH - h*float64(b.AvgLatency)/float64(c.MaxLatency)
			pts = append(pts, num(x+slot/2)+","+num(y))
		}
	}
	c.Line = strings.Join(pts, " ")
	return c
}

// ErrorRate is the share of runs that failed, as a percentage string.
func (c chart) ErrorRate() string {
	if c.Runs == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*float64(c.Errors)/float64(c.Runs), 'f', 1, 64) + "%"
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
