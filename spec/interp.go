package spec

import (
	"fmt"
	"strings"
)

// Env looks up environment variables for interpolation. os.LookupEnv is the usual
// one; tests pass a map's lookup.
type Env func(name string) (string, bool)

// expand resolves ${VAR} and ${VAR:-default} in s; $${ stands for a literal ${.
// It is the only place values enter specs from the environment. changed reports
// whether s had anything to resolve, so callers know to hide the result;
// vals are the non-empty values taken from env, so callers know what to redact.
func expand(s string, env Env) (out string, vals []string, changed bool, err error) {
	if !strings.Contains(s, "${") {
		return s, nil, false, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' { // $${ → literal ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			changed = true
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", nil, true, fmt.Errorf("unterminated ${ in value: close it with }")
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validVarName(name) {
			return "", nil, true, fmt.Errorf("invalid variable name %q in ${%s}: use letters, digits and _", name, expr)
		}
		val, ok := env(name)
		switch {
		case ok && (val != "" || !hasDef):
			b.WriteString(val)
			if val != "" {
				vals = append(vals, val)
			}
		case hasDef:
			b.WriteString(def)
		default:
			return "", nil, true, fmt.Errorf("environment variable %s is not set: set it or write ${%s:-default}", name, name)
		}
		s = s[i+end+1:]
		changed = true
	}
	return b.String(), vals, changed, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
