package view

import (
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

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
	// Ticks label the time axis every tickEvery, placed as percentages of
	// the width (the SVG stretches, so the labels are HTML beside it);
	// From and To bound the chart, for its accessible name.
	Ticks    []tick
	From, To time.Time
}

// tick is one time label under the chart.
type tick struct {
	Label string // 08:15, UTC like every time on the console's pages
	Style templ.SafeCSS
}

// tickEvery spaces the time axis' labels.
const tickEvery = 15 * time.Minute

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
		br.Title = b.Start.UTC().Format("15:04") + ": " + plural(b.Runs, "run", "runs") + ", " + plural(b.Errors, "error", "errors")
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
	c.From = buckets[0].Start
	step := time.Hour / time.Duration(len(buckets))
	if len(buckets) > 1 && buckets[1].Start.After(buckets[0].Start) {
		step = buckets[1].Start.Sub(buckets[0].Start)
	}
	c.To = buckets[len(buckets)-1].Start.Add(step)
	c.Ticks = ticks(c.From, c.To)
	return c
}

// ticks places a label at each whole quarter hour in [from, to]. A label
// near an edge is aligned to it rather than centred, so it never sticks
// out of the chart (and out of a 390 px page).
func ticks(from, to time.Time) []tick {
	span := to.Sub(from)
	if span <= 0 {
		return nil
	}
	var out []tick
	for t := from.Truncate(tickEvery); !t.After(to); t = t.Add(tickEvery) {
		if t.Before(from) {
			continue
		}
		left := 100 * float64(t.Sub(from)) / float64(span)
		shift := "-50%"
		switch {
		case left < 8:
			shift = "0"
		case left > 92:
			shift = "-100%"
		}
		out = append(out, tick{Label: t.UTC().Format("15:04"), Style: templ.SafeCSS("left:" + num(left) + "%;transform:translateX(" + shift + ")")})
	}
	return out
}

// ErrorRate is the share of runs that failed, as a percentage string.
func (c chart) ErrorRate() string {
	if c.Runs == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*float64(c.Errors)/float64(c.Runs), 'f', 1, 64) + "%"
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// chartLabel is the chart's accessible name: what it shows, over which
// times, and the totals (the axis labels are hidden from screen readers,
// this says it all).
func chartLabel(c chart) string {
	l := "Runs per interval over the last hour"
	if !c.From.IsZero() {
		l += ", " + c.From.UTC().Format("15:04") + " to " + c.To.UTC().Format("15:04") + " UTC"
	}
	l += ": " + plural(c.Runs, "run", "runs") + ", " + plural(c.Errors, "error", "errors")
	if c.MaxRuns > 0 {
		l += "; the tallest bar is " + plural(c.MaxRuns, "run", "runs")
	}
	return l
}
