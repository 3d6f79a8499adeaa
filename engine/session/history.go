package session

import "github.com/troupehq/troupe/engine/model"

// historyBudgeter is a runner that bounds its history by tokens as well as
// by runs (agents and teams).
type historyBudgeter interface{ HistoryTokens() int }

// bytesPerToken is the cheap estimate used for the history budget: about four
// bytes of English text per token for the OpenAI and Anthropic tokenizers.
// It avoids a tokenizer per provider on the hot path; the budget is a bound
// on context growth, not an exact count.
const bytesPerToken = 4

// messageOverhead is the per-message framing (role, separators) counted in
// tokens, as the providers' chat formats add a few tokens per message.
const messageOverhead = 4

// EstimateTokens is the estimated token count of msgs: their text, tool
// call names and arguments, and a small per-message overhead.
func EstimateTokens(msgs []model.Message) int {
	n := 0
	for _, m := range msgs {
		b := len(m.Content) + len(m.Name)
		for _, c := range m.ToolCalls {
			b += len(c.Name) + len(c.Arguments)
		}
		n += messageOverhead + (b+bytesPerToken-1)/bytesPerToken
	}
	return n
}

// FitHistory flattens runs (oldest first) into the context's history,
// keeping the newest runs whose estimated tokens fit maxTokens (no bound when
// maxTokens <= 0). It drops whole runs, oldest first, so a tool call never
// loses its result; a newest run larger than the budget alone is dropped too.
func FitHistory(runs [][]model.Message, maxTokens int) []model.Message {
	first, total, count := len(runs), 0, 0
	for i := len(runs) - 1; i >= 0; i-- {
		t := EstimateTokens(runs[i])
		if maxTokens > 0 && total+t > maxTokens {
			break
		}
		total += t
		count += len(runs[i])
		first = i
	}
	if count == 0 {
		return nil
	}
	out := make([]model.Message, 0, count)
	for _, r := range runs[first:] {
		out = append(out, r...)
	}
	return out
}
