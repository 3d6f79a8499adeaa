package view

import (
	"strconv"

	"github.com/troupehq/troupe/spec"
)

// plural counts n of something, in the singular for one: plural(1,
// "tool call", "tool calls") is "1 tool call". Every count a page shows
// goes through it; English has too many irregular plurals for a generic
// "+s".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// kindLabels name the spec kinds in the plural, as headings show them.
// TestPluralsAndKindLabels keeps it whole.
var kindLabels = map[spec.Kind]string{
	spec.KindAgent:     "Agents",
	spec.KindTeam:      "Teams",
	spec.KindTool:      "Tools",
	spec.KindKnowledge: "Knowledge bases",
	spec.KindModel:     "Models",
	spec.KindWorkflow:  "Workflows",
	spec.KindTrigger:   "Triggers",
	spec.KindBudget:    "Budgets",
}

// KindLabel names a spec kind in the plural: "Knowledge bases", not
// "Knowledges". A kind missing from the table is shown as its name.
func KindLabel(kind string) string {
	if l, ok := kindLabels[spec.Kind(kind)]; ok {
		return l
	}
	return kind
}
