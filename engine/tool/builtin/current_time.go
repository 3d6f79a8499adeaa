package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	// Embedded zone data: minimal container images often lack
	// /usr/share/zoneinfo, and current_time must know every IANA zone anyway.
	_ "time/tzdata"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

type currentTime struct {
	now func() time.Time
}

var _ tool.Tool = currentTime{}

// currentTimeModule registers current_time, which has no options.
func currentTimeModule(o Options) tool.Module {
	return tool.Module{Type: "current_time", Builtin: true,
		New: func(context.Context, *spec.Tool, tool.Deps) (tool.Tool, error) { return newCurrentTime(o.Now), nil }}
}

func newCurrentTime(now func() time.Time) currentTime {
	if now == nil {
		now = time.Now
	}
	return currentTime{now: now}
}

var currentTimeDef = model.ToolDef{
	Name: "current_time",
	Description: "Returns the current date and time (RFC 3339), the day of the week and the time zone. " +
		"Use it whenever the answer depends on today's date or the time; do not guess them.",
	Parameters: object(map[string]any{
		"timezone": map[string]any{
			"type":        "string",
			"description": `IANA time zone name such as "Europe/Paris" or "America/New_York". Default: UTC.`,
		},
	}),
}

func (currentTime) Def() model.ToolDef { return currentTimeDef }

func (c currentTime) Call(ctx context.Context, args json.RawMessage) (string, error) {
	var a struct {
		Timezone string `json:"timezone"`
	}
	if err := tool.Decode(args, &a); err != nil {
		return "", err
	}
	loc, err := location(a.Timezone)
	if err != nil {
		return "", err
	}
	t := c.now().In(loc)
	abbrev, offset := t.Zone()
	return fmt.Sprintf("%s\nWeekday: %s\nTime zone: %s (%s, UTC%s)",
		t.Format(time.RFC3339), t.Weekday(), loc, abbrev, formatOffset(offset)), nil
}

// location loads an IANA zone. "Local" is refused: it would be the server's
// zone, which means nothing to the user and varies between deployments.
func location(name string) (*time.Location, error) {
	name = strings.TrimSpace(name)
	if name == "" || strings.EqualFold(name, "UTC") || strings.EqualFold(name, "GMT") || name == "Z" {
		return time.UTC, nil
	}
	if name != "Local" {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc, nil
		}
	}
	return nil, tool.ArgumentError("unknown time zone %q: use an IANA name such as \"Europe/Paris\" or \"America/New_York\", or omit timezone for UTC", name)
}

func formatOffset(seconds int) string {
	sign := '+'
	if seconds < 0 {
		sign, seconds = '-', -seconds
	}
	return fmt.Sprintf("%c%02d:%02d", sign, seconds/3600, seconds%3600/60)
}
