package tool

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
)

// Redacted replaces a secret in text, as the model providers do for the API
// keys their servers echo back.
const Redacted = "[redacted]"

// minSecretLen is the shortest value treated as a secret: shorter values would
// redact unrelated text (a header "X-Debug: 1" is not a credential).
const minSecretLen = 4

// SecretHolder is implemented by tools and toolsets that send configured
// credentials (API keys in headers or URLs, tokens in a server's environment).
// Upstreams often reflect what they were sent, for example an Authorization
// header quoted in a 401 body; the agent loop removes these values from every
// result and error before the model, events, stored runs or traces see them.
type SecretHolder interface {
	Secrets() []string
}

// SecretName reports whether a header or environment variable name suggests a
// credential, such as Authorization, X-Api-Key, GITHUB_TOKEN or Cookie.
func SecretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"key", "auth", "token", "secret", "passw", "cookie", "credential", "session", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// secretForms returns the forms of a configured credential worth redacting:
// the value itself and, for "Scheme credential" values such as
// "Bearer sk-...", the credential alone, which upstreams quote without the
// scheme too.
func secretForms(v string) []string {
	v = strings.TrimSpace(v)
	if len(v) < minSecretLen {
		return nil
	}
	out := []string{v}
	if scheme, cred, ok := strings.Cut(v, " "); ok && !strings.ContainsAny(scheme, "=,") {
		if cred = strings.TrimSpace(cred); len(cred) >= minSecretLen {
			out = append(out, cred)
		}
	}
	return out
}

// URLSecrets returns the credentials a URL carries: its password and the
// values of query parameters whose names look like credentials (api_key=...).
// Other query values (units=metric) are not secrets and would redact
// ordinary words from results.
func URLSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok {
		out = append(out, p, url.QueryEscape(p))
	}
	for k, vs := range u.Query() {
		if SecretName(k) {
			out = append(out, vs...)
		}
	}
	return out
}

// Redactor removes a fixed set of secrets from text. The zero value and nil
// redact nothing. It is immutable and safe for concurrent use.
type Redactor struct {
	secrets []string // longest first, so a secret containing another is replaced whole
}

// NewRedactor returns a Redactor for secrets (and the credential part of
// "Scheme credential" values), ignoring too-short values and duplicates.
func NewRedactor(secrets ...string) *Redactor {
	var s []string
	for _, secret := range secrets {
		for _, v := range secretForms(secret) {
			if !slices.Contains(s, v) {
				s = append(s, v)
			}
		}
	}
	slices.SortFunc(s, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return &Redactor{secrets: s}
}

// CollectSecrets gathers the secrets of every tool and toolset that holds
// some.
func CollectSecrets(holders ...any) []string {
	var out []string
	for _, h := range holders {
		if sh, ok := h.(SecretHolder); ok {
			out = append(out, sh.Secrets()...)
		}
	}
	return out
}

// Empty reports whether r has nothing to redact.
func (r *Redactor) Empty() bool { return r == nil || len(r.secrets) == 0 }

// Redact returns s with every secret replaced by [Redacted].
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, Redacted)
	}
	return s
}

// Error returns err with its message redacted; the result still matches
// errors.Is and errors.As against err's chain.
func (r *Redactor) Error(err error) error {
	if err == nil || r.Empty() {
		return err
	}
	msg := err.Error()
	if red := r.Redact(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
