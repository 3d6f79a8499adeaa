package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServeMCPFlag: /mcp is served unless --mcp=false or TROUPE_MCP=0 turns
// it off; the flag wins over the environment.
func TestServeMCPFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{name: "default on", want: true},
		{name: "flag off", args: []string{"--mcp=false"}, want: false},
		{name: "env off", env: map[string]string{"TROUPE_MCP": "0"}, want: false},
		{name: "env on", env: map[string]string{"TROUPE_MCP": "1"}, want: true},
		{name: "flag wins", args: []string{"--mcp=true"}, env: map[string]string{"TROUPE_MCP": "0"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			cfg, err := parseServe(tt.args, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }, &out)
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.mcp)
		})
	}
}
