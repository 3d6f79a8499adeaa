package model

import (
	"math"
	"strconv"
	"strings"
)

// Cost is an amount in nano-dollars (1e-9 USD). Costs are integers so that
// sums over millions of calls, in memory and in the database's budget
// counters, are exact and independent of the order they are added in; a
// float64 of dollars drifts when many small amounts are summed, and micro-
// dollars are too coarse (ten gpt-4o-mini input tokens cost 1.5 µ$). int64
// nano-dollars hold up to 9.2 billion dollars.
type Cost int64

// Dollars returns the cost in USD.
func (c Cost) Dollars() float64 { return float64(c) / 1e9 }

// CostFromDollars converts USD to a Cost, rounding to the nearest nano-dollar.
func CostFromDollars(usd float64) Cost { return Cost(math.Round(usd * 1e9)) }

// MarshalJSON writes the cost in dollars, the unit every API and AgentOS
// client expects.
func (c Cost) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, c.Dollars(), 'f', -1, 64), nil
}

// UnmarshalJSON reads a cost in dollars.
func (c *Cost) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*c = 0
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*c = CostFromDollars(f)
	return nil
}

// Price is what a model charges, in USD per million tokens.
type Price struct {
	Input  float64 `json:"input"`
	Output float64 `json:"output"`
}

// Cost returns what u costs at p: in×input/1e6 + out×output/1e6 dollars,
// rounded once to the nearest nano-dollar. (tokens × USD-per-million × 1000
// is nano-dollars.)
func (p Price) Cost(u Usage) Cost {
	return Cost(math.Round(float64(u.InputTokens)*p.Input*1e3 + float64(u.OutputTokens)*p.Output*1e3))
}

// prices are list prices of well-known models, USD per million tokens
// (standard tier, uncached input, no batch discount), from
// https://openai.com/api/pricing and
// https://docs.anthropic.com/en/docs/about-claude/pricing, checked against
// published copies of both tables dated 2026-03. Vendors change prices: a
// Model document's pricing overrides this table, and models not listed cost
// unknown (0).
var prices = map[string]Price{
	// OpenAI
	"gpt-5":        {Input: 1.25, Output: 10.00},
	"gpt-5.1":      {Input: 1.25, Output: 10.00},
	"gpt-5-mini":   {Input: 0.25, Output: 2.00},
	"gpt-5-nano":   {Input: 0.05, Output: 0.40},
	"gpt-4o":       {Input: 2.50, Output: 10.00},
	"gpt-4o-mini":  {Input: 0.15, Output: 0.60},
	"gpt-4.1":      {Input: 2.00, Output: 8.00},
	"gpt-4.1-mini": {Input: 0.40, Output: 1.60},
	"gpt-4.1-nano": {Input: 0.10, Output: 0.40},
	"o1":           {Input: 15.00, Output: 60.00},
	"o1-mini":      {Input: 1.10, Output: 4.40},
	"o3":           {Input: 2.00, Output: 8.00},
	"o3-mini":      {Input: 1.10, Output: 4.40},
	"o4-mini":      {Input: 1.10, Output: 4.40},
	// Anthropic
	"claude-opus-4":     {Input: 15.00, Output: 75.00},
	"claude-opus-4-1":   {Input: 15.00, Output: 75.00},
	"claude-opus-4-5":   {Input: 5.00, Output: 25.00},
	"claude-opus-4-6":   {Input: 5.00, Output: 25.00},
	"claude-sonnet-4":   {Input: 3.00, Output: 15.00},
	"claude-sonnet-4-5": {Input: 3.00, Output: 15.00},
	"claude-sonnet-4-6": {Input: 3.00, Output: 15.00},
	"claude-3-7-sonnet": {Input: 3.00, Output: 15.00},
	"claude-haiku-4-5":  {Input: 1.00, Output: 5.00},
	"claude-3-5-haiku":  {Input: 0.80, Output: 4.00},
	"claude-3-haiku":    {Input: 0.25, Output: 1.25},
	// The offline demo model is free.
	"echo": {},
}

// KnownPrice returns the built-in price of a vendor model id. Dated snapshots
// (gpt-4o-2024-08-06, claude-sonnet-4-5-20250929) and Anthropic's -latest
// aliases are priced as their model. ok is false for unknown models, whose
// cost is unknown rather than an error.
func KnownPrice(modelID string) (Price, bool) {
	id := strings.ToLower(modelID)
	if p, ok := prices[id]; ok {
		return p, true
	}
	id = strings.TrimSuffix(id, "-latest")
	// Strip a trailing date: -YYYY-MM-DD (OpenAI) or -YYYYMMDD (Anthropic).
	if i := strings.LastIndexByte(id, '-'); i > 0 && len(id)-i-1 == 8 && digits(id[i+1:]) {
		id = id[:i]
	} else if n := len(id); n > 11 && id[n-11] == '-' && digits(id[n-10:n-6]) && id[n-6] == '-' && digits(id[n-5:n-3]) && id[n-3] == '-' && digits(id[n-2:]) {
		id = id[:n-11]
	}
	p, ok := prices[id]
	return p, ok
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
