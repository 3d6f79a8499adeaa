package chunk

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{"", 0},
		{" \t\n\r\n ", 0},
		{"hello", 1},
		{"Hello, world!", 4},
		{"The quick brown fox jumps over the lazy dog.", 10},
		{"document", 1},             // 8 bytes: one token
		{"documents", 2},            // 9 bytes
		{"internationalization", 4}, // 20 bytes: ceil(20/4)-1
		{"snake_case_identifier", 5},
		{"e.g.", 4},
		{"x := f(a, b)", 9},
		{"---", 1}, // a run of one punctuation character is a word
		{"------------", 2},
		{"...!?", 3},
		{"| --- | --- |", 5},
		{"3.14159", 3},
		{"café naïve", 2},
		{"Привет, мир", 4}, // Cyrillic letters are 2 bytes: "Привет" is 12 bytes
		{"日本語", 3},
		{"東京は晴れです。", 8},
		{"한국어 텍스트", 6},
		{"AI模型", 3},
		{"👍", 1},
		{"👍🏽", 2},              // emoji and skin tone modifier
		{"❤️", 2},              // heart and variation selector (a mark)
		{"👨\u200d👩\u200d👧", 5}, // ZWJ sequence: three emoji, two joiners
		{"か\u3099", 2},         // kana and combining voicing mark
		{"a\u00a0b", 2},        // no-break space separates
		{"a\u200bb", 2},        // so does zero width space
		{"\ufeffBOM", 1},       // byte order mark is whitespace
		{"\xff\xfe", 2},        // invalid bytes count one each
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			require.Equal(t, tt.want, Tokens(tt.text))
		})
	}
}

// randomText makes text of words from many scripts, punctuation, emoji, CJK
// runs, long words, blank lines and Markdown-ish lines.
func randomText(r *rand.Rand, words int) string {
	vocab := []string{
		"the", "a", "of", "retrieval", "augmented", "generation", "chunk", "Troupe",
		"internationalization", "snake_case_name", "e.g.", "i.e.,", "Dr.", "U.S.", "3.14",
		"café", "naïve", "Привет", "мир", "नमस्ते", "مرحبا", "👍", "👍🏽", "👨\u200d👩\u200d👧", "❤️",
		"(see", "this)", "\"quoted\"", "end.", "why?", "yes!", "--", "...", "|", "---",
		"日本語のテキスト", "中文", "文本。", "한국어", "か\u3099", "x\u0301y",
		strings.Repeat("z", 97), strings.Repeat("語", 40), "https://example.com/a/b?c=d&e=f",
	}
	seps := []string{" ", " ", " ", " ", " ", "  ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", "", "\u00a0", "\u3000"}
	var b strings.Builder
	for range words {
		b.WriteString(vocab[r.IntN(len(vocab))])
		b.WriteString(seps[r.IntN(len(seps))])
		switch r.IntN(40) {
		case 0:
			b.WriteString("\n# Heading " + vocab[r.IntN(len(vocab))] + "\n")
		case 1:
			b.WriteString("\n```go\nfunc f() {\n\n\treturn 1. // " + vocab[r.IntN(len(vocab))] + "\n}\n```\n")
		case 2:
			b.WriteString("\n\nSetext title\n=====\n")
		case 3:
			b.WriteString("\n- item one\n- item two\n")
		}
	}
	return b.String()
}

func TestTokensProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		s := randomText(r, 1+r.IntN(30))
		n := Tokens(s)
		require.GreaterOrEqual(t, n, 0)
		require.Equal(t, n, Tokens(s), "stable")
		if strings.TrimSpace(s) != "" {
			require.Positive(t, n)
		}
		// Additive across whitespace and CJK characters.
		i := r.IntN(len(s) + 1)
		for i < len(s) && !utf8.RuneStart(s[i]) {
			i++
		}
		a, b := s[:i], s[i:]
		require.Equal(t, Tokens(a)+Tokens(b), Tokens(a+" "+b))
		require.Equal(t, Tokens(a)+1+Tokens(b), Tokens(a+"語"+b))
		require.Equal(t, Tokens(a)+Tokens(b), Tokens(a+"\n\n"+b))
	}
}

func TestTokensDoesNotAllocate(t *testing.T) {
	s := randomText(rand.New(rand.NewPCG(3, 4)), 500)
	allocs := testing.AllocsPerRun(10, func() { Tokens(s) })
	require.Zero(t, allocs)
}
