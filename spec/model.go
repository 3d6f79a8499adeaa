package spec

import (
	"strings"
	"time"
)

// Providers are the model vendors the language knows. ollama speaks the OpenAI
// wire format at http://localhost:11434/v1 unless base_url says otherwise; any
// other OpenAI-compatible server is provider openai with a base_url.
var Providers = []string{"openai", "anthropic", "ollama", "echo"}

// EchoModel is the offline, deterministic demo model.
const EchoModel = "echo"

// Model is a named model configuration agents refer to by name.
type Model struct {
	Meta `yaml:",inline"`

	Provider    string            `yaml:"provider" spec:"required" enum:"openai,anthropic,ollama,echo" doc:"Wire format and vendor."`
	Model       string            `yaml:"model" doc:"The vendor's model id, such as gpt-4o-mini (required except for echo)."`
	BaseURL     string            `yaml:"base_url" doc:"API base URL, for OpenAI-compatible servers (vLLM, LM Studio, Groq, OpenRouter...)."`
	APIKey      string            `yaml:"api_key" doc:"API key; write ${VAR} so the secret stays in the environment. Defaults to the provider's usual variable."`
	Headers     map[string]string `yaml:"headers" doc:"Extra HTTP headers sent with every request."`
	Temperature *float64          `yaml:"temperature" doc:"Sampling temperature, 0 to 2."`
	MaxTokens   int               `yaml:"max_tokens" doc:"Upper bound on tokens generated per request."`
	Timeout     Duration          `yaml:"timeout" doc:"Limit for one request (default 2m)."`
	Retries     *int              `yaml:"retries" doc:"Retries of rate-limited or failed requests (default 2)."`
	Fallbacks   []string          `yaml:"fallbacks" doc:"Models tried in order when this one fails: Model names or provider/model strings."`
	Pricing     *Pricing          `yaml:"pricing" doc:"Price in USD per million tokens; overrides the built-in table of well-known models."`
}

// Pricing is what a model charges, in USD per million tokens.
type Pricing struct {
	Input  float64 `yaml:"input" doc:"USD per million input tokens."`
	Output float64 `yaml:"output" doc:"USD per million output tokens."`
}

// Model defaults.
const (
	DefaultModelTimeout = 2 * time.Minute
	DefaultModelRetries = 2
)

func (m *Model) applyDefaults() {
	if m.Timeout == 0 {
		m.Timeout = Duration(DefaultModelTimeout)
	}
	if m.Retries == nil {
		r := DefaultModelRetries
		m.Retries = &r
	}
}

func (m *Model) validate(v *validator) {
	p := m.Path()
	if m.Model == "" && m.Provider != "echo" {
		v.errorf(p, "missing required field \"model\" for provider %s", m.Provider)
	}
	v.url(p+".base_url", m.BaseURL)
	v.temperature(p+".temperature", m.Temperature)
	v.nonNegative(p+".max_tokens", m.MaxTokens)
	v.duration(p+".timeout", m.Timeout)
	if m.Retries != nil {
		v.nonNegative(p+".retries", *m.Retries)
	}
	if m.Pricing != nil {
		if m.Pricing.Input < 0 {
			v.errorf(p+".pricing.input", "price must not be negative, got %s", formatFloat(m.Pricing.Input))
		}
		if m.Pricing.Output < 0 {
			v.errorf(p+".pricing.output", "price must not be negative, got %s", formatFloat(m.Pricing.Output))
		}
	}
	for i, f := range m.Fallbacks {
		fp := indexPath(p+".fallbacks", i)
		if f == m.Name {
			v.errorf(fp, "model %q cannot be its own fallback", f)
			continue
		}
		v.modelRef(fp, f)
	}
}

// SplitModelRef splits an inline model reference such as openai/gpt-4o-mini into
// provider and model. ok is false for names of Model documents.
func SplitModelRef(ref string) (provider, model string, ok bool) {
	if ref == EchoModel {
		return EchoModel, EchoModel, true
	}
	provider, model, ok = strings.Cut(ref, "/")
	return provider, model, ok
}
