package guard

import (
	"regexp"
	"strings"
)

// injectionRule is one prompt-injection pattern and how much evidence a match
// is, from 0 to 1.
type injectionRule struct {
	name   string
	weight float64
	re     *regexp.Regexp
}

// injectionRules are matched against the lower-cased text. Weights were set
// on the labelled set in injection_test.go: a rule that alone means an
// injection weighs at least 0.5 (the default threshold); weaker signals only
// add up.
var injectionRules = []injectionRule{
	{"ignore_previous", 0.85, regexp.MustCompile(`\b(ignore|disregard|forget|skip|override|bypass)\b[^.\n]{0,20}\b(all|any|every|the|your|my|these|those)?\s*(previous|prior|above|earlier|preceding|original|initial|system|existing)\s+(instructions?|prompts?|rules|directions|directives|guidelines|messages|context|commands)`)},
	{"ignore_your_rules", 0.6, regexp.MustCompile(`\b(ignore|disregard|forget|abandon|drop)\s+(all\s+)?(of\s+)?(your|the)\s+(instructions|rules|guidelines|guardrails|restrictions|programming|training|safety)`)},
	{"reveal_prompt", 0.75, regexp.MustCompile(`\b(reveal|show|print|repeat|output|leak|display|dump|tell me|give me|share|recite|echo)\b[^.\n]{0,30}\b(system|initial|hidden|secret|original|developer|internal)\s+(prompt|instructions?|message|rules)`)},
	{"prompt_verbatim", 0.6, regexp.MustCompile(`\b(everything|all the text|the text|words?)\s+(above|before)\b[^.\n]{0,40}\b(verbatim|word for word|exactly)`)},
	{"ask_prompt", 0.45, regexp.MustCompile(`\bwhat\s+(is|are|were)\s+your\s+(system\s+prompt|initial\s+instructions|hidden\s+instructions|original\s+instructions|instructions)\b`)},
	{"persona_jailbreak", 0.7, regexp.MustCompile(`\b(you are now|from now on,? you are|act as|pretend (to be|you are)|roleplay as|role-play as|you will be)\b[^.\n]{0,40}\b(dan|unrestricted|unfiltered|jailbroken|evil|without (any )?(restrictions|limits|rules|filters)|no (restrictions|limits|rules|filters)|developer mode|god mode)\b`)},
	{"dan", 0.6, regexp.MustCompile(`\b(do anything now|jailbreak(ed)?|developer mode (enabled|activated)|dan mode)\b`)},
	{"role_system", 0.55, regexp.MustCompile(`\b(act|behave|respond|speak)\s+as\s+(the\s+|a\s+)?(system|developer|administrator|root)\b|\byou are (the )?system\b`)},
	{"chat_tags", 0.65, regexp.MustCompile(`<\|?\s*(im_start|im_end|system|endoftext)\s*\|?>|\[/?inst\]|<<\s*/?sys\s*>>|</?\s*(system|instructions?|admin)\s*>|\[\s*(system|admin)\s*(message|override)?\s*\]`)},
	{"fake_header", 0.35, regexp.MustCompile(`(?m)^\s*(#{1,3}\s*)?(system|assistant|admin|developer)\s*(message|prompt)?\s*:`)},
	{"end_of_prompt", 0.45, regexp.MustCompile(`\b(end of (the )?(system )?(prompt|instructions)|new instructions\s*:|updated instructions\s*:|begin (new|real) instructions)`)},
	{"no_longer_bound", 0.55, regexp.MustCompile(`\b(no longer|not) (bound|restricted|limited) by\b|\bno longer (subject to|have to follow)\b`)},
	{"must_obey", 0.35, regexp.MustCompile(`\b(must|will|shall) (now |only )?(obey|comply with everything|follow my (commands|orders))\b`)},
	{"ignore_that_instead", 0.6, regexp.MustCompile(`\bignore (that|this|it|everything)\b[^.\n]{0,30}\binstead\b`)},
	{"no_restrictions", 0.4, regexp.MustCompile(`\b(without|free (of|from))\b[^.\n]{0,15}\b(restrictions|filters|censorship|limitations|guidelines|content polic(y|ies)|safety)`)},
	{"bypass_safety", 0.55, regexp.MustCompile(`\b(bypass|circumvent|disable|turn off|evade|get around)\b[^.\n]{0,20}\b(safety|filters?|guardrails?|content polic(y|ies)|moderation|restrictions)`)},
	{"instead_do", 0.3, regexp.MustCompile(`\b(instead|rather),?\s+(you (must|should|will)|do the following|respond with|say)\b`)},
	{"decode_execute", 0.7, regexp.MustCompile(`\b(decode|base64|b64|rot13|hex)\b[^\n]{0,60}\b(execute|run|follow|obey|do what it says|carry out|perform)\b|\b(execute|run|follow|obey|carry out)\b[^\n]{0,40}\b(decoded|base64|b64)\b|\b(run|execute|follow|do)\s+what\s+it\s+(decodes|translates)\b`)},
	{"exfiltrate", 0.5, regexp.MustCompile(`\b(send|post|upload|forward|exfiltrate)\b[^.\n]{0,40}\b(conversation|chat history|api keys?|credentials|passwords?|secrets?|system prompt)\b[^.\n]{0,30}\b(to|at)\s+(https?://|http|\S+@)`)},
}

// base64Run finds long base64 payloads, a common carrier for smuggled
// instructions; alone it is weak evidence (attachments and hashes look the
// same).
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`)

// InjectionScore scores text for prompt injection from 0 (nothing found) to
// 1 and names the rules that matched. Evidence combines like independent
// probabilities (1 − Π(1 − w)), so two weak signals together outweigh either.
func InjectionScore(text string) (score float64, rules []string) {
	lower := strings.ToLower(text)
	miss := 1.0
	for _, r := range injectionRules {
		if r.re.MatchString(lower) {
			miss *= 1 - r.weight
			rules = append(rules, r.name)
		}
	}
	if base64Run.MatchString(text) {
		miss *= 1 - 0.2
		rules = append(rules, "base64_payload")
	}
	return 1 - miss, rules
}
