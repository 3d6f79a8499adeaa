package view

import (
	"strings"

	"github.com/a-h/templ"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// md renders answers' Markdown. Without html.WithUnsafe goldmark writes no
// raw HTML from its input (it leaves a comment in its place) and drops
// links and images whose URL is dangerous (javascript:, vbscript:, file:,
// data: other than images), so a model's answer, which anyone who can
// steer the model writes, cannot script the console. Linkify only makes
// links of http(s), www. and e-mail text.
var md = goldmark.New(goldmark.WithExtensions(extension.GFM))

// Markdown renders s (cut to MaxShownText) as sanitized HTML. A text that
// fails to render, which goldmark never does for a string, is shown as
// escaped text instead.
func Markdown(s string) templ.Component {
	var b strings.Builder
	if err := md.Convert([]byte(shown(s)), &b); err != nil {
		return templ.Raw("<p>" + templ.EscapeString(shown(s)) + "</p>")
	}
	return templ.Raw(b.String())
}
