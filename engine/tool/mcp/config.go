package mcp

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/troupehq/troupe/spec"
)

// config is the part of a spec.Tool that determines a toolset, normalized so
// that equivalent documents compare equal: allow-list order and duplicates,
// header-name case, nil versus empty collections and an unset timeout do not
// make a difference.
type config struct {
	Name    string            `json:"name"`
	Command string            `json:"command,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	URL     string            `json:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Allow   []string          `json:"allow,omitempty"`
	Timeout time.Duration     `json:"timeout"`
}

func newConfig(s *spec.Tool) config {
	c := config{
		Name:    s.Name,
		Command: s.Command,
		URL:     s.URL,
		Timeout: s.Timeout.D(),
	}
	if c.Timeout <= 0 {
		c.Timeout = spec.DefaultToolTimeout
	}
	if len(s.Args) > 0 {
		c.Args = slices.Clone(s.Args)
	}
	if len(s.Env) > 0 {
		c.Env = maps.Clone(s.Env)
	}
	if len(s.Headers) > 0 {
		// Sorted, so that names differing only in case resolve the same way
		// every time.
		c.Headers = make(map[string]string, len(s.Headers))
		for _, k := range slices.Sorted(maps.Keys(s.Headers)) {
			c.Headers[http.CanonicalHeaderKey(k)] = s.Headers[k]
		}
	}
	if len(s.Allow) > 0 {
		c.Allow = slices.Compact(slices.Sorted(slices.Values(s.Allow)))
	}
	return c
}

// key identifies the configuration in a Pool. JSON sorts map keys, so equal
// configurations give equal keys. The key holds secrets (env, headers): it is
// kept in memory only and never logged.
func (c config) key() string {
	b, err := json.Marshal(c)
	if err != nil {
		panic("mcp: encoding config key: " + err.Error()) // strings, maps and slices of strings always encode
	}
	return string(b)
}

// stdio reports whether the server is a child process rather than a URL.
func (c config) stdio() bool { return c.Command != "" }

// endpoint describes where the server is, for messages: the command, or the
// URL without credentials, query or fragment, which may hold secrets.
func (c config) endpoint() string {
	if c.stdio() {
		return c.Command
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		return "invalid URL"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// cloneSpec copies s deeply enough that Options.Dial cannot change the pool's
// view of it, nor see later changes to the caller's document.
func cloneSpec(s *spec.Tool) *spec.Tool {
	c := *s
	c.Args = slices.Clone(s.Args)
	c.Allow = slices.Clone(s.Allow)
	c.Env = maps.Clone(s.Env)
	c.Headers = maps.Clone(s.Headers)
	c.AllowedHosts = slices.Clone(s.AllowedHosts)
	c.Parameters = maps.Clone(s.Parameters)
	return &c
}

// redact removes secrets of the configuration from an error message: header
// values, and the URL's credentials and query (as in "Post <url>: dial tcp:
// ..." from net/http). Servers and libraries do not always know what is
// secret, and error messages reach models and logs.
func (c config) redact(err error) error {
	if err == nil {
		return nil
	}
	type replacement struct{ old, new string }
	var reps []replacement
	if c.URL != "" {
		reps = append(reps, replacement{c.URL, c.endpoint()})
		if u, perr := url.Parse(c.URL); perr == nil {
			reps = append(reps, replacement{u.String(), c.endpoint()}, replacement{u.Redacted(), c.endpoint()})
		}
	}
	for _, v := range c.Headers {
		if len(v) >= 4 { // shorter values would redact unrelated text
			reps = append(reps, replacement{v, "[redacted]"})
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(reps, func(a, b replacement) int { return len(b.old) - len(a.old) })
	msg := err.Error()
	redacted := msg
	for _, r := range reps {
		redacted = strings.ReplaceAll(redacted, r.old, r.new)
	}
	if redacted == msg {
		return err
	}
	return &redactedError{msg: redacted, err: err}
}

// redactedError shows a cleaned message but still matches errors.Is and
// errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
