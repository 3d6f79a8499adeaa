package session_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
)

// toolRun is a run with a tool call and its result between the question and
// the answer; text is the question's content.
func toolRun(text string) []model.Message {
	return []model.Message{
		{Role: model.RoleUser, Content: text},
		{Role: model.RoleAssistant, ToolCalls: []model.ToolCall{{ID: "c", Name: "calculator", Arguments: `{"expression":"2+2"}`}}},
		{Role: model.RoleTool, ToolCallID: "c", Name: "calculator", Content: "4"},
		{Role: model.RoleAssistant, Content: "it is 4"},
	}
}

func TestEstimateTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		msgs []model.Message
		want int
	}{
		{"none", nil, 0},
		{"empty message is its overhead", []model.Message{{Role: model.RoleUser}}, 4},
		{"four bytes a token, rounded up", []model.Message{{Role: model.RoleUser, Content: "12345"}}, 4 + 2},
		// user 4+1, call 4+ceil((10+20)/4)=12, result 4+ceil((10+1)/4)=7, answer 4+2=6
		{"tool calls and results count", toolRun("why?"), 5 + 12 + 7 + 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, session.EstimateTokens(tc.msgs))
		})
	}
}

func TestFitHistory(t *testing.T) {
	t.Parallel()
	r1, r2, r3 := toolRun("one?"), toolRun("two?"), toolRun("three?")
	per := session.EstimateTokens(r1) // 30; r3 is 31
	runs := [][]model.Message{r1, r2, r3}
	for _, tc := range []struct {
		name   string
		budget int
		want   [][]model.Message
	}{
		{"no bound", 0, runs},
		{"all fit exactly", 3*per + 1, runs},
		{"one token short drops the oldest run whole", 3 * per, [][]model.Message{r2, r3}},
		{"only the newest", per + 1, [][]model.Message{r3}},
		{"newest alone too big", per, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want []model.Message
			for _, r := range tc.want {
				want = append(want, r...)
			}
			require.Equal(t, want, session.FitHistory(runs, tc.budget))
		})
	}
	require.Nil(t, session.FitHistory(nil, 100))
}

// BenchmarkFitHistory assembles the history of 10 stored runs with a tool
// call each (the default history) under the default token budget.
func BenchmarkFitHistory(b *testing.B) {
	runs := make([][]model.Message, 10)
	for i := range runs {
		runs[i] = toolRun(fmt.Sprintf("question %d: %s", i, strings.Repeat("words ", 40)))
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(session.FitHistory(runs, 8000)) != 40 {
			b.Fatal("history lost runs")
		}
	}
}
