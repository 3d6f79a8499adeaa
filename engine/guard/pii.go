package guard

import (
	"slices"
	"strings"
)

// PII kinds, as written in YAML and in [REDACTED:kind].
const (
	KindEmail  = "email"
	KindPhone  = "phone"
	KindCard   = "card"
	KindIBAN   = "iban"
	KindAPIKey = "api_key"
)

// Match is one piece of personal data or secret found in a text: the bytes
// text[Start:End] of kind Kind.
type Match struct {
	Start, End int
	Kind       string
}

// kindSet is a bit set of PII kinds, so a scan asks "is this kind wanted"
// without a map lookup.
type kindSet uint8

const (
	bitEmail kindSet = 1 << iota
	bitPhone
	bitCard
	bitIBAN
	bitAPIKey
	allKinds = bitEmail | bitPhone | bitCard | bitIBAN | bitAPIKey
)

func kindBits(kinds []string) kindSet {
	var s kindSet
	for _, k := range kinds {
		switch k {
		case KindEmail:
			s |= bitEmail
		case KindPhone:
			s |= bitPhone
		case KindCard:
			s |= bitCard
		case KindIBAN:
			s |= bitIBAN
		case KindAPIKey:
			s |= bitAPIKey
		}
	}
	return s
}

// FindPII returns the personal data and secrets of the given kinds (all when
// kinds is empty) in text, in order and without overlaps. The detectors are
// hand-written single passes rather than regular expressions: a 4 KB message
// is scanned in microseconds, and each detector states its own rules for
// avoiding look-alikes (dates, versions, order numbers, file names).
func FindPII(text string, kinds ...string) []Match {
	set := allKinds
	if len(kinds) > 0 {
		set = kindBits(kinds)
	}
	return findPII(text, set)
}

func findPII(s string, set kindSet) []Match {
	var out []Match
	for i := 0; i < len(s); {
		c := s[i]
		if i > 0 && isWordByte(s[i-1]) && c != '@' {
			i++
			continue
		}
		var m Match
		var ok bool
		skip := i + 1
		switch {
		case set&bitAPIKey != 0 && isAlpha(c):
			m, ok = apiKeyAt(s, i)
			if ok {
				break
			}
			fallthrough
		case set&bitIBAN != 0 && c >= 'A' && c <= 'Z':
			if set&bitIBAN != 0 {
				m, ok = ibanAt(s, i)
			}
		case (set&(bitCard|bitPhone) != 0) && (isDigit(c) || c == '+' || c == '('):
			m, ok, skip = numberAt(s, i, set)
		}
		if ok {
			out = append(out, m)
			i = m.End
			continue
		}
		// A number that is neither card nor phone is skipped whole, so its
		// tail is not read as a shorter number.
		i = max(skip, i+1)
	}
	if set&bitEmail != 0 {
		out = mergeMatches(out, findEmails(s))
	}
	return out
}

// mergeMatches adds extra to sorted ms, dropping any that overlap one
// already there (the earlier detector wins).
func mergeMatches(ms, extra []Match) []Match {
	if len(extra) == 0 {
		return ms
	}
	for _, e := range extra {
		overlap := false
		for _, m := range ms {
			if e.Start < m.End && m.Start < e.End {
				overlap = true
				break
			}
		}
		if !overlap {
			ms = append(ms, e)
		}
	}
	slices.SortFunc(ms, func(a, b Match) int { return a.Start - b.Start })
	return ms
}

// Redact replaces each match with [REDACTED:kind].
func Redact(s string, ms []Match) string {
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, m := range ms {
		b.WriteString(s[last:m.Start])
		b.WriteString("[REDACTED:")
		b.WriteString(m.Kind)
		b.WriteByte(']')
		last = m.End
	}
	b.WriteString(s[last:])
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

// isWordByte reports bytes that glue to a token, so a match never starts in
// the middle of a word, number or identifier.
func isWordByte(c byte) bool { return isAlnum(c) || c == '_' || c >= 0x80 }

// --- email ---

// File extensions that look like top-level domains in "icon@2x.png" and
// similar asset names.
var notTLDs = map[string]bool{"png": true, "jpg": true, "jpeg": true, "gif": true, "svg": true, "webp": true, "ico": true, "pdf": true}

func isLocalByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomainByte(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

func findEmails(s string) []Match {
	var out []Match
	from := 0
	for {
		at := strings.IndexByte(s[from:], '@')
		if at < 0 {
			return out
		}
		at += from
		from = at + 1
		start := at
		for start > 0 && isLocalByte(s[start-1]) {
			start--
		}
		end := at + 1
		for end < len(s) && isDomainByte(s[end]) {
			end++
		}
		for end > at+1 && (s[end-1] == '.' || s[end-1] == '-') {
			end--
		}
		local, domain := s[start:at], s[at+1:end]
		if local == "" || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
			continue
		}
		if start > 0 && (s[start-1] == '@' || s[start-1] == '/' || s[start-1] == ':') {
			continue // part of a URL's user info or a scoped package
		}
		dot := strings.LastIndexByte(domain, '.')
		if dot <= 0 || strings.Contains(domain, "..") {
			continue
		}
		tld := domain[dot+1:]
		if len(tld) < 2 || !allAlpha(tld) || notTLDs[strings.ToLower(tld)] {
			continue
		}
		out = append(out, Match{Start: start, End: end, Kind: KindEmail})
		from = end
	}
}

func allAlpha(s string) bool {
	for i := range len(s) {
		if !isAlpha(s[i]) {
			return false
		}
	}
	return true
}

// --- cards and phone numbers ---

// numberAt reads a run of digits with single separators (space, dash, dot,
// parentheses) starting at i, and classifies it as a payment card (13–19
// digits, a known issuer prefix and a valid Luhn checksum) or a phone number
// (international with +, or a common national layout).
func numberAt(s string, i int, set kindSet) (Match, bool, int) {
	var digits [24]byte
	var groups [12]int
	nd, ng := 0, 0
	plus := s[i] == '+'
	j := i
	if plus {
		j++
	}
	var seps sepSet
	paren := false
	end := j
	for j < len(s) {
		c := s[j]
		switch {
		case isDigit(c):
			if nd == len(digits) {
				return Match{}, false, end
			}
			digits[nd] = c
			nd++
			if ng == 0 || (j > 0 && !isDigit(s[j-1])) {
				if ng == len(groups) {
					return Match{}, false, end
				}
				ng++
			}
			groups[ng-1]++
			j++
			end = j
			continue
		case c == '(' && !paren && j+1 < len(s) && isDigit(s[j+1]) && (nd == 0 || s[j-1] == ' '):
			paren = true
			j++
			continue
		case c == ')' && paren && j > 0 && isDigit(s[j-1]):
			j++
			if j < len(s) && s[j] == ' ' {
				j++
			}
			continue
		case (c == ' ' || c == '-' || c == '.') && nd > 0 && j+1 < len(s) && (isDigit(s[j+1]) || s[j+1] == '('):
			seps = seps.with(c)
			j++
			continue
		}
		break
	}
	if nd == 0 || (end < len(s) && (isWordByte(s[end]) || (s[end] == '.' && end+1 < len(s) && isDigit(s[end+1])))) {
		return Match{}, false, end
	}
	d := string(digits[:nd])
	g := groups[:ng]
	if set&bitCard != 0 && !plus && !paren && !seps.has('.') && nd >= 13 && nd <= 19 && cardPrefix(d) && luhn(d) {
		return Match{Start: i, End: end, Kind: KindCard}, true, end
	}
	if set&bitPhone == 0 {
		return Match{}, false, end
	}
	if plus {
		if nd >= 8 && nd <= 15 && d[0] != '0' {
			return Match{Start: i, End: end, Kind: KindPhone}, true, end
		}
		return Match{}, false, end
	}
	if seps.count() <= 1 && nationalPhone(d, g, paren, seps) {
		return Match{Start: i, End: end, Kind: KindPhone}, true, end
	}
	return Match{}, false, end
}

// nationalPhone accepts the layouts people write phone numbers in without a
// country code: North American 3-3-4 ((555) 123-4567, 555-123-4567,
// 555.123.4567, 1-555-123-4567) and European trunk-prefixed numbers of 10 or
// 11 digits in groups of 2 to 4 (020 7946 0958, 06 12 34 56 78). A run
// without separators, and any layout of a date (2024-01-15) or version
// (1.2.3), is not a phone number.
func nationalPhone(d string, g []int, paren bool, seps sepSet) bool {
	if len(g) < 2 && !paren {
		return false
	}
	switch {
	case len(d) == 10 && slices.Equal(g, []int{3, 3, 4}) && d[0] >= '2':
		return true
	case len(d) == 11 && slices.Equal(g, []int{1, 3, 3, 4}) && d[0] == '1':
		return true
	}
	if seps.has('.') {
		return false
	}
	if d[0] == '0' && d[1] != '0' && (len(d) == 10 || len(d) == 11) && len(g) >= 3 {
		for _, n := range g {
			if n < 2 || n > 4 {
				return false
			}
		}
		return true
	}
	return false
}

// cardPrefix reports issuer prefixes of the major card networks (Visa,
// Mastercard, American Express, Discover, JCB, Diners, UnionPay), so a long
// order number that happens to pass Luhn is less likely to be taken for one.
func cardPrefix(d string) bool {
	two := int(d[0]-'0')*10 + int(d[1]-'0')
	four := two*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4':
		return true
	case two >= 51 && two <= 55, four >= 2221 && four <= 2720:
		return true
	case two == 34 || two == 37 || two == 36 || two == 38 || two == 30 || two == 35 || two == 62 || two == 65:
		return true
	case four == 6011, four >= 6440 && four <= 6499:
		return true
	}
	return false
}

// luhn checks the Luhn (mod 10) checksum of a string of digits.
func luhn(d string) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// sepSet records which separators (space, dash, dot) a number uses.
type sepSet uint8

func sepBit(c byte) sepSet {
	switch c {
	case ' ':
		return 1
	case '-':
		return 2
	case '.':
		return 4
	}
	return 0
}

func (s sepSet) with(c byte) sepSet { return s | sepBit(c) }
func (s sepSet) has(c byte) bool    { return s&sepBit(c) != 0 }
func (s sepSet) count() int         { return int(s&1) + int(s>>1&1) + int(s>>2&1) }

// --- IBAN ---

// ibanLengths are the IBAN lengths of the countries of the SWIFT registry.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// ibanAt reads an IBAN at i: a known country code, two check digits and the
// country's number of characters (spaces between groups allowed), whose
// mod-97 remainder is 1.
func ibanAt(s string, i int) (Match, bool) {
	if i+4 > len(s) || s[i+1] < 'A' || s[i+1] > 'Z' || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return Match{}, false
	}
	n, ok := ibanLengths[s[i:i+2]]
	if !ok {
		return Match{}, false
	}
	var buf [34]byte
	count, j := 0, i
	for j < len(s) && count < n {
		c := s[j]
		switch {
		case isAlnum(c):
			buf[count] = c
			if isAlpha(c) {
				buf[count] = c &^ 0x20 // upper case
			}
			count++
			j++
			continue
		case c == ' ' && count >= 4 && j+1 < len(s) && isAlnum(s[j+1]):
			j++
			continue
		}
		break
	}
	if count != n || (j < len(s) && isWordByte(s[j])) {
		return Match{}, false
	}
	if !ibanChecksum(buf[:n]) {
		return Match{}, false
	}
	return Match{Start: i, End: j, Kind: KindIBAN}, true
}

// ibanChecksum computes the ISO 13616 mod-97 check: the first four
// characters moved to the end, letters as 10..35, the number mod 97 is 1.
func ibanChecksum(b []byte) bool {
	rem := 0
	add := func(c byte) bool {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A') + 10) % 97
		default:
			return false
		}
		return true
	}
	for _, c := range b[4:] {
		if !add(c) {
			return false
		}
	}
	for _, c := range b[:4] {
		if !add(c) {
			return false
		}
	}
	return rem == 1
}

// --- API keys ---

// keyShape is a credential format: a literal prefix and a body of at least
// min characters of the allowed set.
type keyShape struct {
	prefix string
	min    int
	body   func(byte) bool
}

func keyBody(c byte) bool   { return isAlnum(c) || c == '_' || c == '-' }
func upperNum(c byte) bool  { return isDigit(c) || (c >= 'A' && c <= 'Z') }
func alnumOnly(c byte) bool { return isAlnum(c) }

// keyShapes are the credential formats the vendors document; each prefix is
// specific enough that a match is almost surely a secret. Generic "long
// random strings" are left alone: hashes, ids and base64 payloads look the
// same.
var keyShapes = []keyShape{
	{"sk-", 20, keyBody}, // OpenAI (sk-proj-…), Anthropic (sk-ant-…)
	{"ghp_", 36, alnumOnly}, {"gho_", 36, alnumOnly}, {"ghu_", 36, alnumOnly}, {"ghs_", 36, alnumOnly}, {"ghr_", 36, alnumOnly},
	{"github_pat_", 40, keyBody},
	{"glpat-", 20, keyBody},
	{"AKIA", 16, upperNum}, {"ASIA", 16, upperNum},
	{"xoxb-", 20, keyBody}, {"xoxp-", 20, keyBody}, {"xoxa-", 20, keyBody}, {"xoxr-", 20, keyBody}, {"xoxs-", 20, keyBody},
	{"AIza", 35, keyBody},
	{"sk_live_", 20, alnumOnly}, {"sk_test_", 20, alnumOnly}, {"rk_live_", 20, alnumOnly}, {"pk_live_", 20, alnumOnly},
}

func apiKeyAt(s string, i int) (Match, bool) {
	switch s[i] {
	case 's', 'g', 'A', 'x', 'r', 'p':
	default:
		return Match{}, false // no key shape starts with it: skip the prefix loop
	}
	rest := s[i:]
	for _, k := range keyShapes {
		if !strings.HasPrefix(rest, k.prefix) {
			continue
		}
		j := i + len(k.prefix)
		for j < len(s) && k.body(s[j]) {
			j++
		}
		n := j - i - len(k.prefix)
		if n < k.min || (j < len(s) && isWordByte(s[j])) {
			continue
		}
		if !mixed(s[i+len(k.prefix) : j]) {
			continue
		}
		return Match{Start: i, End: j, Kind: KindAPIKey}, true
	}
	return Match{}, false
}

// mixed reports a body with both letters and digits, as generated keys have
// and words joined with dashes (sk-this-is-not-a-key) do not.
func mixed(b string) bool {
	var letter, digit bool
	for i := range len(b) {
		letter = letter || isAlpha(b[i])
		digit = digit || isDigit(b[i])
	}
	return letter && digit
}
