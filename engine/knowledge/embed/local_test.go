package embed

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func norm2(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// embedInto writes the vector of text into dst without allocating, as Embed
// does for each text.
func embedInto(l *Local, text string, dst []float32) {
	s := l.get()
	s.embed(text, dst)
	l.put(s)
}

func embedOne(t testing.TB, l *Local, text string) []float32 {
	t.Helper()
	vs, err := l.Embed(context.Background(), []string{text})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	return vs[0]
}

// TestLocalGolden pins the hashing: if features, weights, hash or
// normalization change, stored vectors stop being comparable with new ones,
// and this test says so.
func TestLocalGolden(t *testing.T) {
	l := NewLocal(LocalOptions{Dimension: 64})
	v := embedOne(t, l, "Troupe ingests Markdown: héllo wörld, installing 42 agents!")
	want := []float32{0.0177507848, 0, 0.0770675242, -0.0294371732, -0.0238151755, 0.0266261753, 0.046753671, 0.00281099859}
	for i, w := range want {
		require.InDelta(t, w, v[i], 1e-6, "component %d", i)
	}
}

func TestLocalNameAndDimension(t *testing.T) {
	tests := []struct {
		opts     LocalOptions
		wantDim  int
		wantName string
	}{
		{LocalOptions{}, 768, "local-768"},
		{LocalOptions{Dimension: -3}, 768, "local-768"},
		{LocalOptions{Dimension: 64}, 64, "local-64"},
		{LocalOptions{Dimension: 384}, 384, "local-384"},
		{LocalOptions{Dimension: 1}, 1, "local-1"},
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			l := NewLocal(tt.opts)
			require.Equal(t, tt.wantDim, l.Dimension())
			require.Equal(t, tt.wantName, l.Name())
			vs, err := l.Embed(context.Background(), []string{"alpha beta", "", "gamma"})
			require.NoError(t, err)
			require.Len(t, vs, 3)
			for _, v := range vs {
				require.Len(t, v, tt.wantDim)
			}
		})
	}
}

func TestLocalUnitNorm(t *testing.T) {
	texts := []string{
		"a",
		"x",
		"Hello",
		"How do I reset my password?",
		strings.Repeat("repeat ", 1000),
		"# Heading\n\n- item one\n- item two\n\n```go\nfunc main() { fmt.Println(\"hi\") }\n```",
		"日本語のテキストを検索する",
		"Ελληνικά κείμενα και ΣΟΦΙΑ",
		"Русский текст для проверки",
		"emoji 🎉 and café",
		"\xff\xfe invalid utf8 \xc3",
		strings.Repeat("supercalifragilisticexpialidocious", 20),
	}
	for _, dim := range []int{1, 16, 64, 768} {
		l := NewLocal(LocalOptions{Dimension: dim})
		vs, err := l.Embed(context.Background(), texts)
		require.NoError(t, err)
		for i, v := range vs {
			require.InDelta(t, 1.0, norm2(v), 1e-5, "dim %d text %q", dim, texts[i])
		}
	}
}

func TestLocalEmptyGivesZeroVector(t *testing.T) {
	l := NewLocal(LocalOptions{Dimension: 32})
	for _, text := range []string{"", "   ", "\n\t", "!!! ... ---", "\u0301\u0301", "\xff"} {
		v := embedOne(t, l, text)
		require.Len(t, v, 32)
		require.Zero(t, norm2(v), "text %q", text)
	}
	vs, err := l.Embed(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, vs)
}

func TestLocalDeterministic(t *testing.T) {
	text := "The quick brown fox jumps over the lazy dog; installation of Troupe agents."
	a := embedOne(t, NewLocal(LocalOptions{}), text)
	l := NewLocal(LocalOptions{})
	for range 3 {
		require.Equal(t, a, embedOne(t, l, text))
	}
	// Reusing pooled scratch after a very different text changes nothing.
	embedOne(t, l, strings.Repeat("naïve ﬁle 漢字 ", 500))
	require.Equal(t, a, embedOne(t, l, text))
}

func TestLocalNormalization(t *testing.T) {
	l := NewLocal(LocalOptions{})
	tests := []struct{ a, b string }{
		{"Café Crème", "cafe creme"},
		{"HELLO World", "hello world"},
		{"naïve façade", "naive facade"},
		{"ﬁle ﬂow", "file flow"},                              // ligatures
		{"Ｆｕｌｌｗｉｄｔｈ", "fullwidth"},                            // compatibility forms
		{"e\u0301te\u0301", "été"},                            // decomposed input
		{"ΣΟΦΙΑΣ", "σοφιας"},                                  // final sigma
		{"hello, world!", "hello   world"},                    // punctuation separates
		{"snake_case-name", "snake case name"},                // so do _ and -
		{"To be the reset of the password", "reset password"}, // stopwords
	}
	for _, tt := range tests {
		t.Run(tt.a, func(t *testing.T) {
			require.InDelta(t, 1.0, cosine(embedOne(t, l, tt.a), embedOne(t, l, tt.b)), 1e-6)
		})
	}
}

func TestLocalStopwordsOnlyText(t *testing.T) {
	l := NewLocal(LocalOptions{})
	a := embedOne(t, l, "to be or not to be")
	require.InDelta(t, 1.0, norm2(a), 1e-5)
	require.Greater(t, cosine(a, embedOne(t, l, "Not to be, or to be.")), 0.99)
}

func TestLocalSimilarityOrdering(t *testing.T) {
	l := NewLocal(LocalOptions{})
	tests := []struct {
		name, query, related, unrelated string
	}{
		{
			name:      "password reset",
			query:     "How do I reset my password?",
			related:   "To reset your password, open Settings > Account and choose Reset password. We email you a link to set a new password.",
			unrelated: "Invoices are sent monthly. Billing questions: update your payment method and view past invoices on the Billing page.",
		},
		{
			name:      "billing",
			query:     "Where can I see my invoices?",
			related:   "Invoices are sent monthly. Billing questions: update your payment method and view past invoices on the Billing page.",
			unrelated: "To reset your password, open Settings > Account and choose Reset password.",
		},
		{
			name:      "docker install",
			query:     "installing docker on ubuntu",
			related:   "Docker installation guide for Ubuntu servers",
			unrelated: "Pricing plans and billing cycles",
		},
		{
			name:      "accents and case",
			query:     "CAFÉ menu",
			related:   "The cafe menu lists coffee and cake.",
			unrelated: "The server logs rotate daily.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := embedOne(t, l, tt.query)
			rel := cosine(q, embedOne(t, l, tt.related))
			unrel := cosine(q, embedOne(t, l, tt.unrelated))
			require.Greater(t, rel, 0.25, "related")
			require.Greater(t, rel, unrel+0.2, "related %.3f vs unrelated %.3f", rel, unrel)
		})
	}
}

// TestLocalMorphology checks that words sharing a stem but not a spelling are
// similar through their character n-grams, and unrelated words are not.
func TestLocalMorphology(t *testing.T) {
	l := NewLocal(LocalOptions{})
	tests := []struct{ word, variant, unrelated string }{
		{"installing", "installation", "weather"},
		{"configure", "configuration", "banana"},
		{"password", "passwords", "invoice"},
		{"embedding", "embeddings", "kitchen"},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			w := embedOne(t, l, tt.word)
			sim := cosine(w, embedOne(t, l, tt.variant))
			other := cosine(w, embedOne(t, l, tt.unrelated))
			require.Greater(t, sim, 0.02, "variant %q", tt.variant)
			require.Greater(t, sim, other+0.02, "variant %.3f vs unrelated %.3f", sim, other)
		})
	}
}

func TestLocalConcurrent(t *testing.T) {
	l := NewLocal(LocalOptions{Dimension: 256})
	texts := make([]string, 50)
	for i := range texts {
		texts[i] = fmt.Sprintf("document %d about naïve topic %d with installation notes %s", i, i%7, strings.Repeat("x", i))
	}
	want, err := l.Embed(context.Background(), texts)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for r := range 20 {
				i := (g + r) % len(texts)
				got, err := l.Embed(context.Background(), texts[i:i+1])
				if err != nil {
					errs <- err
					return
				}
				if cosine(got[0], want[i]) < 1-1e-6 || len(got[0]) != 256 {
					errs <- fmt.Errorf("text %d differs under concurrency", i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestLocalLargeInputs(t *testing.T) {
	l := NewLocal(LocalOptions{})
	var b strings.Builder
	for i := 0; b.Len() < 512<<10; i++ {
		fmt.Fprintf(&b, "word%d café %x ", i, i*7919)
	}
	tests := map[string]string{
		"512 KB of text": b.String(),
		"one long word":  strings.Repeat("abcdefghij", 100_000),
		"long non-ASCII": strings.Repeat("ภาษาไทย", 10_000),
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			v := embedOne(t, l, text)
			require.InDelta(t, 1.0, norm2(v), 1e-5)
			require.Equal(t, v, embedOne(t, l, text))
		})
	}
	// The pool still works for small texts afterwards.
	require.InDelta(t, 1.0, cosine(embedOne(t, l, "hello world"), embedOne(t, NewLocal(LocalOptions{}), "hello world")), 1e-6)
}

func TestLocalContextCanceled(t *testing.T) {
	l := NewLocal(LocalOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Embed(ctx, []string{"hello"})
	require.ErrorIs(t, err, context.Canceled)
}

// benchChunks returns Markdown chunks of about 500 tokens (~2.7 KB) of
// varied technical prose.
func benchChunks() []string {
	paras := []string{
		"## Installing the agent\n\nDownload the release archive for your platform and unpack it into `/opt/troupe`. The installer checks the kernel version, creates a service account and registers a systemd unit; run `troupe doctor` afterwards to verify connectivity to the control plane.",
		"Retries use exponential backoff with full jitter. When the provider answers 429 Too Many Requests, the client honours the Retry-After header, up to a configurable maximum, before trying again with the same idempotency key.",
		"- **Chunk size**: 512 tokens by default, with 64 tokens of overlap.\n- **Embedder**: `local-768` unless a model endpoint is configured.\n- **Store**: the embedded vector store, persisted through SQLite or PostgreSQL.",
		"Knowledge bases are versioned: re-ingesting a document with identical bytes is a no-op, while edited documents replace their previous chunks atomically, so searches never observe a half-updated index.",
		"To reset your password, open Settings › Account and choose *Reset password*. We email a single-use link that expires after thirty minutes; if it does not arrive, check the spam folder or ask an administrator.",
		"Billing happens monthly in arrears. Invoices list usage per workspace — model tokens, vector storage in gigabytes and tool executions — and can be exported as CSV from the Billing page.",
		"```yaml\nknowledge:\n  embedder: openai/text-embedding-3-small\n  chunk_tokens: 512\n  hybrid: true\n```\n\nHybrid search fuses BM25 keyword scores and dense cosine similarities with reciprocal rank fusion (k = 60).",
		"Café owners in Zürich reported naïve configuration mistakes: the façade sensor’s firmware rejected UTF-8 names, so the résumé upload failed with error E42 until the locale was fixed.",
	}
	var chunks []string
	for start := range paras {
		var b strings.Builder
		for i := start; b.Len() < 2700; i++ {
			b.WriteString(paras[i%len(paras)])
			b.WriteString("\n\n")
		}
		chunks = append(chunks, b.String())
	}
	return chunks
}

func BenchmarkLocal(b *testing.B) {
	chunks := benchChunks()
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	for _, dim := range []int{384, 768} {
		b.Run(fmt.Sprintf("dim=%d", dim), func(b *testing.B) {
			l := NewLocal(LocalOptions{Dimension: dim})
			dst := make([]float32, dim)
			b.SetBytes(int64(total / len(chunks)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				embedInto(l, chunks[i%len(chunks)], dst)
			}
		})
	}
	b.Run("non-ASCII", func(b *testing.B) {
		text := strings.Repeat("Привет, мир! Установка агента занимает минуту. Ελληνικά κείμενα. 日本語のテキスト。 ", 20)
		l := NewLocal(LocalOptions{})
		dst := make([]float32, l.Dimension())
		b.SetBytes(int64(len(text)))
		b.ReportAllocs()
		for b.Loop() {
			embedInto(l, text, dst)
		}
	})
	b.Run("Embed/batch=32", func(b *testing.B) {
		l := NewLocal(LocalOptions{})
		batch := make([]string, 32)
		n := 0
		for i := range batch {
			batch[i] = chunks[i%len(chunks)]
			n += len(batch[i])
		}
		b.SetBytes(int64(n))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Embed(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
