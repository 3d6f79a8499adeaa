package guard_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/guard"
)

// found is one expected or detected piece of PII: its kind and its text.
type found struct{ kind, text string }

// piiCases are labelled texts: every PII they hold is listed, so whatever else
// is detected is a false positive. Near misses (dates, versions, order ids,
// invalid checksums, code that looks like an address) list nothing.
var piiCases = []struct {
	name string
	text string
	want []found
}{
	// Emails.
	{"email plain", "write to jane.doe@example.com please", []found{{"email", "jane.doe@example.com"}}},
	{"email plus tag", "alerts go to ops+alerts@mail.example.co.uk.", []found{{"email", "ops+alerts@mail.example.co.uk"}}},
	{"email in angle brackets", "From: Bob <bob_smith@corp.io>", []found{{"email", "bob_smith@corp.io"}}},
	{"email uppercase", "CONTACT: SUPPORT@EXAMPLE.ORG", []found{{"email", "SUPPORT@EXAMPLE.ORG"}}},
	{"two emails", "a@b.co and c.d@e-f.com", []found{{"email", "a@b.co"}, {"email", "c.d@e-f.com"}}},
	{"near miss npm scope", "run npm install @types/node@20.11.5", nil},
	{"near miss retina asset", "use icon@2x.png for retina", nil},
	{"near miss decorator", "@app.route('/users') def users(): pass", nil},
	{"near miss localhost", "ssh admin@localhost", nil},
	{"near miss package version", "pip install requests@2.31.0", nil},
	{"email in code string", `send(to="dev@example.com")`, []found{{"email", "dev@example.com"}}},
	// Phone numbers.
	{"phone international", "call +44 20 7946 0958 today", []found{{"phone", "+44 20 7946 0958"}}},
	{"phone international dashes", "mobile: +1-415-555-2671", []found{{"phone", "+1-415-555-2671"}}},
	{"phone us parens", "office (415) 555-2671", []found{{"phone", "(415) 555-2671"}}},
	{"phone us dashes", "cell 415-555-2671.", []found{{"phone", "415-555-2671"}}},
	{"phone us dots", "fax 415.555.2671", []found{{"phone", "415.555.2671"}}},
	{"phone french", "appelez le 06 12 34 56 78", []found{{"phone", "06 12 34 56 78"}}},
	{"phone uk national", "ring 020 7946 0958", []found{{"phone", "020 7946 0958"}}},
	{"phone german", "Telefon +49 30 901820", []found{{"phone", "+49 30 901820"}}},
	{"near miss iso date", "released on 2024-01-15 at noon", nil},
	{"near miss version", "upgrade to 1.22.3 or 10.4.12.1", nil},
	{"near miss ip", "listen on 192.168.100.200:8080", nil},
	{"near miss order id", "order #4820193745 shipped", nil},
	{"near miss time range", "open 9-17, closed 12-13", nil},
	{"near miss zip and year", "Springfield 62704, since 1998", nil},
	// Cards.
	{"card visa spaced", "card 4111 1111 1111 1111 exp 12/27", []found{{"card", "4111 1111 1111 1111"}}},
	{"card mastercard dashes", "MC 5555-5555-5555-4444", []found{{"card", "5555-5555-5555-4444"}}},
	{"card amex", "amex 3782 822463 10005", []found{{"card", "3782 822463 10005"}}},
	{"card plain digits", "pay with 4012888888881881 now", []found{{"card", "4012888888881881"}}},
	{"card discover", "6011111111111117", []found{{"card", "6011111111111117"}}},
	{"near miss bad luhn", "card 4111 1111 1111 1112", nil},
	{"near miss long order number", "tracking 1234567890123456", nil},
	{"near miss uuid-ish digits", "id 9780306406157 (isbn)", nil},
	// IBANs.
	{"iban de spaced", "IBAN DE89 3704 0044 0532 0130 00 for rent", []found{{"iban", "DE89 3704 0044 0532 0130 00"}}},
	{"iban gb", "GB82 WEST 1234 5698 7654 32", []found{{"iban", "GB82 WEST 1234 5698 7654 32"}}},
	{"iban nl compact", "to NL91ABNA0417164300.", []found{{"iban", "NL91ABNA0417164300"}}},
	{"iban fr", "FR14 2004 1010 0505 0001 3M02 606", []found{{"iban", "FR14 2004 1010 0505 0001 3M02 606"}}},
	{"near miss iban bad checksum", "DE88 3704 0044 0532 0130 00", nil},
	{"near miss iban short", "DE89 3704 0044 0532 0130", nil},
	{"near miss product code", "part GB12ABCD and DE10", nil},
	// API keys.
	{"openai key", "OPENAI_API_KEY=sk-proj-4fT9xQ2LmZ8pR7vK1nW3bY6c", []found{{"api_key", "sk-proj-4fT9xQ2LmZ8pR7vK1nW3bY6c"}}},
	{"github token", "token ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8 leaked", []found{{"api_key", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"}}},
	{"aws key id", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", []found{{"api_key", "AKIAIOSFODNN7EXAMPLE"}}},
	{"slack bot token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", []found{{"api_key", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"}}},
	{"stripe live key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", []found{{"api_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}}},
	{"near miss sk words", "the sk-learn-compatible-estimator-wrapper", nil},
	{"near miss git sha", "commit 3f2a9c7e1b4d8f6a0c5e2b7d9f1a3c5e7b9d0f2a", nil},
	{"near miss akia short", "AKIA1234 is not enough", nil},
	// Mixed.
	{"mixed message", "I'm jane@example.com, +33 6 12 34 56 78, card 4111-1111-1111-1111, IBAN NL91ABNA0417164300.",
		[]found{{"email", "jane@example.com"}, {"phone", "+33 6 12 34 56 78"}, {"card", "4111-1111-1111-1111"}, {"iban", "NL91ABNA0417164300"}}},
	{"nothing at all", "How do I reset my password?", nil},
}

// Measured on piiCases when the detectors were written; the test fails if
// either drops.
const (
	minPIIPrecision = 1.0
	minPIIRecall    = 1.0
)

func TestPIIPrecisionRecall(t *testing.T) {
	require.GreaterOrEqual(t, len(piiCases), 40)
	var tp, fp, fn int
	for _, tc := range piiCases {
		t.Run(tc.name, func(t *testing.T) {
			var got []found
			for _, m := range guard.FindPII(tc.text) {
				got = append(got, found{m.Kind, tc.text[m.Start:m.End]})
			}
			want := map[found]int{}
			for _, w := range tc.want {
				want[w]++
			}
			for _, g := range got {
				if want[g] > 0 {
					want[g]--
					tp++
				} else {
					fp++
					t.Logf("false positive %s %q", g.kind, g.text)
				}
			}
			for w, n := range want {
				fn += n
				if n > 0 {
					t.Logf("missed %s %q", w.kind, w.text)
				}
			}
		})
	}
	precision := float64(tp) / float64(tp+fp)
	recall := float64(tp) / float64(tp+fn)
	t.Logf("PII: %d cases, tp=%d fp=%d fn=%d, precision %.3f, recall %.3f", len(piiCases), tp, fp, fn, precision, recall)
	require.GreaterOrEqual(t, precision, minPIIPrecision)
	require.GreaterOrEqual(t, recall, minPIIRecall)
}

func TestRedact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"email and card", "mail a@b.co, card 4111 1111 1111 1111.", "mail [REDACTED:email], card [REDACTED:card]."},
		{"nothing", "plain text", "plain text"},
		{"key", "key=AKIAIOSFODNN7EXAMPLE", "key=[REDACTED:api_key]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, guard.Redact(tt.in, guard.FindPII(tt.in)))
		})
	}
}

func TestFindPIIKinds(t *testing.T) {
	text := "a@b.co 4111 1111 1111 1111"
	got := guard.FindPII(text, "card")
	require.Len(t, got, 1)
	require.Equal(t, "card", got[0].Kind)
}

// input4K is a realistic 4 KB message: prose with a few PII items.
func input4K() string {
	var b strings.Builder
	for i := 0; b.Len() < 4096; i++ {
		fmt.Fprintf(&b, "Paragraph %d: the quarterly report (v1.2.%d, 2024-03-%02d) covers revenue and churn for order 48201%04d. ", i, i, i%28+1, i)
		if i%7 == 3 {
			b.WriteString("Contact jane.doe@example.com or +44 20 7946 0958. ")
		}
	}
	return b.String()[:4096]
}

func BenchmarkPII4K(b *testing.B) {
	text := input4K()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		guard.Redact(text, guard.FindPII(text))
	}
}
