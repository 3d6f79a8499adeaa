package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServeApprovalsWebhookURL: --approvals-webhook (or its env variable)
// takes an absolute http or https URL; anything else stops the server
// before it starts, naming the flag and the value.
func TestServeApprovalsWebhookURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "unset", want: ""},
		{name: "https", args: []string{"--approvals-webhook", "https://hooks.example.com/approvals"}, want: "https://hooks.example.com/approvals"},
		{name: "http with port", args: []string{"--approvals-webhook", "http://127.0.0.1:9000/hook"}, want: "http://127.0.0.1:9000/hook"},
		{name: "env", env: map[string]string{"TROUPE_APPROVALS_WEBHOOK": "https://hooks.example.com/env"}, want: "https://hooks.example.com/env"},
		{name: "flag wins over env", args: []string{"--approvals-webhook", "https://a.example.com/"}, env: map[string]string{"TROUPE_APPROVALS_WEBHOOK": "https://b.example.com/"},
			want: "https://a.example.com/"},
		{name: "other scheme", args: []string{"--approvals-webhook", "ftp://hooks.example.com/x"}, wantErr: `--approvals-webhook "ftp://hooks.example.com/x": use an http or https URL`},
		{name: "no host", args: []string{"--approvals-webhook", "https:///path"}, wantErr: `--approvals-webhook "https:///path": use an http or https URL`},
		{name: "relative", args: []string{"--approvals-webhook", "hooks/approvals"}, wantErr: `--approvals-webhook "hooks/approvals": use an http or https URL`},
		{name: "unparsable", args: []string{"--approvals-webhook", "http://[::1"}, wantErr: `--approvals-webhook "http://[::1": use an http or https URL`},
		{name: "bad env", env: map[string]string{"TROUPE_APPROVALS_WEBHOOK": "mailto:ops@example.com"}, wantErr: `--approvals-webhook "mailto:ops@example.com": use an http or https URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			var out bytes.Buffer
			cfg, err := parseServe(tt.args, getenv, &out)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, cfg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.approvalsWebhook)
		})
	}
}
