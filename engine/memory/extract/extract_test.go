package extract_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/memory/extract"
)

func TestParseOps(t *testing.T) {
	t.Parallel()
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"op":"add","memory":"m"},`, extract.MaxOps+5), ",") + "]"
	tests := []struct {
		name    string
		in      string
		want    []extract.Op
		wantErr bool
	}{
		{"plain", `[{"op":"add","memory":"Likes tea","topics":["drinks"]},{"op":"delete","id":"m1"}]`,
			[]extract.Op{{Op: "add", Memory: "Likes tea", Topics: []string{"drinks"}}, {Op: "delete", ID: "m1"}}, false},
		{"fenced json", "```json\n[{\"op\":\"update\",\"id\":\"m2\",\"memory\":\"Lives in Porto\"}]\n```",
			[]extract.Op{{Op: "update", ID: "m2", Memory: "Lives in Porto"}}, false},
		{"bare fence", "```\n[]\n```", []extract.Op{}, false},
		{"nothing to do", "[]", []extract.Op{}, false},
		{"prose", "The user likes tea.", nil, true},
		{"an object, not a list", `{"op":"add"}`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := extract.ParseOps(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	got, err := extract.ParseOps(many)
	require.NoError(t, err)
	require.Len(t, got, extract.MaxOps, "at most MaxOps operations")
}
