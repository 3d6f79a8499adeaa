package model_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

func TestPriceCostIsTokensTimesPrice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		price   model.Price
		in, out int
		want    model.Cost
	}{
		{"gpt-4o-mini", model.Price{Input: 0.15, Output: 0.60}, 1_000_000, 1_000_000, 750_000_000},
		{"ten input tokens", model.Price{Input: 0.15, Output: 0.60}, 10, 0, 1_500},
		{"gpt-4o", model.Price{Input: 2.50, Output: 10}, 1234, 567, 1234*2500 + 567*10000},
		{"opus", model.Price{Input: 15, Output: 75}, 3, 7, 3*15000 + 7*75000},
		{"free", model.Price{}, 1e6, 1e6, 0},
		{"sub-nano rounds", model.Price{Input: 0.0001}, 4, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.price.Cost(model.Usage{InputTokens: tc.in, OutputTokens: tc.out})
			require.Equal(t, tc.want, got)
			want := float64(tc.in)*tc.price.Input/1e6 + float64(tc.out)*tc.price.Output/1e6
			require.InDelta(t, want, got.Dollars(), 1e-9)
		})
	}
}

func TestKnownPrice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   string
		want model.Price
		ok   bool
	}{
		{"gpt-4o-mini", model.Price{Input: 0.15, Output: 0.60}, true},
		{"gpt-4o-2024-08-06", model.Price{Input: 2.50, Output: 10}, true},
		{"GPT-4.1-nano", model.Price{Input: 0.10, Output: 0.40}, true},
		{"o4-mini", model.Price{Input: 1.10, Output: 4.40}, true},
		{"claude-sonnet-4-5-20250929", model.Price{Input: 3, Output: 15}, true},
		{"claude-haiku-4-5", model.Price{Input: 1, Output: 5}, true},
		{"claude-opus-4-1-latest", model.Price{Input: 15, Output: 75}, true},
		{"echo", model.Price{}, true},
		{"llama3.2", model.Price{}, false},
		{"gpt-4o-mini-2024", model.Price{}, false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			got, ok := model.KnownPrice(tc.id)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCostJSONIsDollars(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(struct{ Cost model.Cost }{model.Cost(1_500)})
	require.NoError(t, err)
	require.JSONEq(t, `{"Cost":0.0000015}`, string(b))
	var back struct{ Cost model.Cost }
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, model.Cost(1_500), back.Cost)
}

type usageProvider struct{ usage model.Usage }

func (p usageProvider) Generate(context.Context, *model.Request, func(model.Delta)) (*model.Response, error) {
	return &model.Response{Content: "ok", Usage: p.usage}, nil
}

func TestChainPricesTheAnsweringTarget(t *testing.T) {
	t.Parallel()
	u := model.Usage{InputTokens: 100, OutputTokens: 50}
	priced := &model.Chain{Targets: []model.Target{{Provider: usageProvider{u}, Price: &model.Price{Input: 2, Output: 8}}}}
	resp, err := priced.Generate(t.Context(), &model.Request{}, nil)
	require.NoError(t, err)
	require.True(t, resp.CostKnown)
	require.Equal(t, model.Cost(100*2000+50*8000), resp.Cost)

	unknown := &model.Chain{Targets: []model.Target{{Provider: usageProvider{u}}}}
	resp, err = unknown.Generate(t.Context(), &model.Request{}, nil)
	require.NoError(t, err)
	require.False(t, resp.CostKnown)
	require.Zero(t, resp.Cost)
}
