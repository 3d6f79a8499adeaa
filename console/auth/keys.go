// Package auth decides who is calling and what they may do: API keys and
// their scopes (Keyring, ParseKeys, LoadKeysFile), the Principal a request
// acts as, and the middleware that resolves it: Bearer for the API route
// groups, Cookie and CSRF for the console's. Each route group answers
// refusals in its own format through a Deny func, so this package writes no
// response bodies of its own.
package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/spec"
)

// Scope is a permission an API key grants.
type Scope string

// Scopes. admin implies every other scope and sees every user's data.
const (
	ScopeAgentsRead     Scope = "agents:read"
	ScopeAgentsRun      Scope = "agents:run"
	ScopeSessionsRead   Scope = "sessions:read"
	ScopeSessionsWrite  Scope = "sessions:write"
	ScopeKnowledgeRead  Scope = "knowledge:read"
	ScopeKnowledgeWrite Scope = "knowledge:write"
	// ScopeApprovalsWrite lets a key see and decide the approvals whose
	// approvers include its user or one of its scopes.
	ScopeApprovalsWrite Scope = "approvals:write"
	ScopeAdmin          Scope = "admin"
)

// Scopes lists every scope.
var Scopes = []Scope{ScopeAgentsRead, ScopeAgentsRun, ScopeSessionsRead, ScopeSessionsWrite, ScopeKnowledgeRead, ScopeKnowledgeWrite, ScopeApprovalsWrite, ScopeAdmin}

// Key is one API key's grants. The key itself is kept only as a hash.
type Key struct {
	Name   string
	UserID string // when set, the key acts as this user only
	// Limit is the key's own rate limit (keys file only); the zero value
	// limits nothing.
	Limit  RateLimit
	scopes map[Scope]bool
	hash   [32]byte
}

// Has reports whether the key grants scope.
func (k *Key) Has(s Scope) bool { return k.scopes[ScopeAdmin] || k.scopes[s] }

// RateLimit bounds a caller: requests per second with a burst, and runs
// (PENDING or RUNNING) at once. A zero field leaves that dimension unlimited.
type RateLimit struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is how many requests may arrive at once after a quiet spell
	// (default: requests_per_second rounded up, at least 1).
	Burst          int `yaml:"burst"`
	ConcurrentRuns int `yaml:"concurrent_runs"`
}

// IsZero reports whether l limits nothing.
func (l RateLimit) IsZero() bool { return l.RequestsPerSecond == 0 && l.ConcurrentRuns == 0 }

// Validate says what to fix in a limit; what names it in the message.
func (l RateLimit) Validate(what string) error {
	switch {
	case l.RequestsPerSecond < 0 || math.IsNaN(l.RequestsPerSecond) || math.IsInf(l.RequestsPerSecond, 0):
		return fmt.Errorf("%s: requests_per_second must be a positive number (or 0 for no limit), got %v", what, l.RequestsPerSecond)
	case l.RequestsPerSecond > 0 && l.RequestsPerSecond < 1e-3:
		return fmt.Errorf("%s: requests_per_second %v is below the smallest limit, 0.001 (one request in 1000s)", what, l.RequestsPerSecond)
	case l.Burst < 0:
		return fmt.Errorf("%s: burst must be at least 1 (or 0 for the default, requests_per_second rounded up), got %d", what, l.Burst)
	case l.Burst > 0 && l.RequestsPerSecond == 0:
		return fmt.Errorf("%s: burst %d needs requests_per_second", what, l.Burst)
	case l.ConcurrentRuns < 0:
		return fmt.Errorf("%s: concurrent_runs must be at least 1 (or 0 for no limit), got %d", what, l.ConcurrentRuns)
	}
	return nil
}

// ScopeNames returns the key's scopes, sorted.
func (k *Key) ScopeNames() []string {
	out := make([]string, 0, len(k.scopes))
	for s := range k.scopes {
		out = append(out, string(s))
	}
	slices.Sort(out)
	return out
}

// Keyring holds the API keys the server accepts.
type Keyring struct {
	keys map[[32]byte]*Key
	// limited counts the keys with a rate limit.
	limited int
}

// Limited reports whether any key has a rate limit.
func (r *Keyring) Limited() bool { return r != nil && r.limited > 0 }

// Len returns how many keys there are; zero means the server runs open.
func (r *Keyring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// Lookup finds the key for a presented token. Tokens are compared by hash, so
// lookup time does not depend on how much of a key matched.
func (r *Keyring) Lookup(token string) (*Key, bool) {
	if r == nil || token == "" {
		return nil, false
	}
	k, ok := r.keys[sha256.Sum256([]byte(token))]
	return k, ok
}

func (r *Keyring) add(k *Key) error {
	if r.keys == nil {
		r.keys = map[[32]byte]*Key{}
	}
	if _, dup := r.keys[k.hash]; dup {
		return fmt.Errorf("API key %q is listed twice", k.Name)
	}
	r.keys[k.hash] = k
	if !k.Limit.IsZero() {
		r.limited++
	}
	return nil
}

func newKey(name, secret, hash, user string, scopes []string) (*Key, error) {
	k := &Key{Name: name, UserID: user, scopes: map[Scope]bool{}}
	switch {
	case secret != "" && hash != "":
		return nil, fmt.Errorf("API key %q: give key or key_sha256, not both", name)
	case secret != "":
		if len(secret) < 16 {
			return nil, fmt.Errorf("API key %q is too short: use at least 16 characters", name)
		}
		k.hash = sha256.Sum256([]byte(secret))
	case hash != "":
		b, err := hex.DecodeString(hash)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("API key %q: key_sha256 must be 64 hex characters", name)
		}
		copy(k.hash[:], b)
	default:
		return nil, fmt.Errorf("API key %q has no key", name)
	}
	if len(scopes) == 0 {
		return nil, fmt.Errorf("API key %q has no scopes (one of: %s)", name, scopeList())
	}
	for _, s := range scopes {
		if !slices.Contains(Scopes, Scope(s)) {
			return nil, fmt.Errorf("API key %q: unknown scope %q (one of: %s)", name, s, scopeList())
		}
		k.scopes[Scope(s)] = true
	}
	return k, nil
}

// ScopeNames lists every scope's name, for what must name a known scope
// (approval policies).
func ScopeNames() []string {
	out := make([]string, len(Scopes))
	for i, sc := range Scopes {
		out[i] = string(sc)
	}
	return out
}

func scopeList() string {
	s := make([]string, len(Scopes))
	for i, sc := range Scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ", ")
}

// ParseKeys reads keys from the TROUPE_API_KEYS format: comma-separated entries
// KEY=SCOPE+SCOPE@USER, where @USER is optional, for example
//
//	sk-admin-0123456789abcdef=admin,sk-alice-0123456789abcdef=agents:read+agents:run+sessions:read@alice
//
// Errors never include the keys.
func ParseKeys(spec string) (*Keyring, error) {
	r := &Keyring{}
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name := fmt.Sprintf("#%d", i+1)
		secret, grants, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("API key %s: write KEY=SCOPE+SCOPE@USER", name)
		}
		grants, user, _ := strings.Cut(grants, "@")
		k, err := newKey(name, strings.TrimSpace(secret), "", strings.TrimSpace(user), strings.Split(grants, "+"))
		if err != nil {
			return nil, err
		}
		if err := r.add(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// maxKeysFileBytes bounds the API keys file: ten thousand keys fit in it.
const maxKeysFileBytes = 4 << 20

// LoadKeysFile reads keys from a YAML file:
//
//	keys:
//	  - name: alice-app
//	    key_sha256: 5e88...   # or key: <the key itself>
//	    scopes: [agents:run, sessions:read]
//	    user_id: alice
//	    rate_limit: {requests_per_second: 5, burst: 10, concurrent_runs: 3}
//
// Rate limits are given in the file only: the TROUPE_API_KEYS format has no
// readable place for them.
func LoadKeysFile(path string, into *Keyring) error {
	// Bounded and regular only: a FIFO or a device given by mistake must
	// fail startup, not hang it or exhaust memory.
	data, err := spec.ReadFile(path, maxKeysFileBytes)
	if err != nil {
		return fmt.Errorf("reading API keys file: %w", err)
	}
	var doc struct {
		Keys []keysFileEntry `yaml:"keys"`
	}
	if err := decodeKeysFile(data, &doc.Keys); err != nil {
		return fmt.Errorf("API keys file %s: %w", path, err)
	}
	for i, e := range doc.Keys {
		name := e.Name
		if name == "" {
			name = fmt.Sprintf("%s #%d", path, i+1)
		}
		k, err := newKey(name, e.Key, e.KeySHA256, e.UserID, e.Scopes)
		if err != nil {
			return err
		}
		if err := e.RateLimit.Validate(fmt.Sprintf("API key %q: rate_limit", name)); err != nil {
			return fmt.Errorf("API keys file %s: %w", path, err)
		}
		k.Limit = e.RateLimit
		if err := into.add(k); err != nil {
			return err
		}
	}
	return nil
}

// keysFileEntry is one entry of the API keys file.
type keysFileEntry struct {
	Name      string    `yaml:"name"`
	Key       string    `yaml:"key"`
	KeySHA256 string    `yaml:"key_sha256"`
	Scopes    []string  `yaml:"scopes"`
	UserID    string    `yaml:"user_id"`
	RateLimit RateLimit `yaml:"rate_limit"`
}

// keysFileShape is what an error about the file's shape shows, so a wrong
// file is fixed from the message alone rather than from a Go type name.
const keysFileShape = "expected `keys:` followed by a list of entries with name, key or key_sha256, scopes (a list), user_id and rate_limit"

// keysFileFields maps each field of an entry to the YAML node kind it takes.
var keysFileFields = map[string]yaml.Kind{
	"name": yaml.ScalarNode, "key": yaml.ScalarNode, "key_sha256": yaml.ScalarNode,
	"scopes": yaml.SequenceNode, "user_id": yaml.ScalarNode, "rate_limit": yaml.MappingNode,
}

// decodeKeysFile checks the file's shape node by node before decoding, since
// yaml.v3's own errors name Go types ("cannot unmarshal !!str into
// []auth.keysFileEntry") and say nothing of what the file should hold.
func decodeKeysFile(data []byte, into *[]keysFileEntry) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	if root.Kind == 0 {
		return nil // an empty file lists no keys
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s", doc.Line, keysFileShape)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if k.Value != "keys" {
			return fmt.Errorf("line %d: unknown field %q; %s", k.Line, k.Value, keysFileShape)
		}
		list = v
	}
	if list == nil || list.Tag == "!!null" {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: `keys` must be a list (each entry starting with \"- name: ...\"); %s", list.Line, keysFileShape)
	}
	for n, item := range list.Content {
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: key entry #%d must be a mapping; %s", item.Line, n+1, keysFileShape)
		}
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := item.Content[i], item.Content[i+1]
			want, ok := keysFileFields[k.Value]
			if !ok {
				return fmt.Errorf("line %d: key entry #%d: unknown field %q; %s", k.Line, n+1, k.Value, keysFileShape)
			}
			if v.Kind != want && v.Tag != "!!null" {
				return fmt.Errorf("line %d: key entry #%d: %s must be %s", v.Line, n+1, k.Value, kindName(want))
			}
		}
		var e keysFileEntry
		if err := item.Decode(&e); err != nil {
			return fmt.Errorf("line %d: key entry #%d: %w", item.Line, n+1, err)
		}
		*into = append(*into, e)
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "a list, for example [agents:run, sessions:read]"
	case yaml.MappingNode:
		return "a mapping, for example {requests_per_second: 5, burst: 10, concurrent_runs: 3}"
	default:
		return "a single value (a string)"
	}
}
