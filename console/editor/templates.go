package editor

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/troupehq/troupe/spec"
)

// Template is a starting point for a new spec file.
type Template struct {
	Kind  string `json:"kind"`
	Title string `json:"title"`
	// content is the file with {{name}} where the name goes.
	content string
}

// Templates are the kinds of file the editor can start, each valid on its
// own (a team and a workflow bring the agents they use, named after them,
// so they check clean in any folder) and runnable offline (the echo model
// unless TROUPE_MODEL says otherwise).
var Templates = []Template{
	{Kind: "agent", Title: "Agent", content: `kind: Agent
version: 1
name: {{name}}
description: What this agent does, in one sentence.
# With no keys set it runs on the offline echo model; set TROUPE_MODEL
# (openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/llama3.2...) or
# name a Model document for a real one.
model: ${TROUPE_MODEL:-echo}
instructions: |
  You are a concise, helpful assistant.
tools: [current_time, calculator]
`},
	{Kind: "team", Title: "Team", content: `# A team and its two members. Members may be any agents or teams of the folder.
kind: Team
version: 1
name: {{name}}
description: Researches a question and writes up the answer.
mode: coordinate
model: ${TROUPE_MODEL:-echo}
instructions: |
  Ask the researcher for the facts, then the writer for the answer.
members: [{{name}}-researcher, {{name}}-writer]
---
kind: Agent
version: 1
name: {{name}}-researcher
description: Finds the facts a question needs.
model: ${TROUPE_MODEL:-echo}
instructions: List the facts that answer the question, briefly.
---
kind: Agent
version: 1
name: {{name}}-writer
description: Writes a clear answer from the facts it is given.
model: ${TROUPE_MODEL:-echo}
instructions: Write a short, clear answer from the facts you are given.
`},
	{Kind: "workflow", Title: "Workflow", content: `# A workflow and the agent its steps run.
kind: Workflow
version: 1
name: {{name}}
description: Drafts a text on a topic, then reviews it.
input:
  type: object
  properties:
    topic: {type: string, description: What to write about}
  required: [topic]
steps:
  - name: draft
    agent: {{name}}-writer
    input: "Write a paragraph about {{ input.topic }}"
  - name: review
    agent: {{name}}-writer
    input: "Improve this paragraph: {{ steps.draft.output }}"
---
kind: Agent
version: 1
name: {{name}}-writer
description: Writes and improves short texts.
model: ${TROUPE_MODEL:-echo}
instructions: Write clearly and briefly.
`},
	{Kind: "knowledge", Title: "Knowledge base", content: `# A knowledge base. Documents come from its sources (globs relative to this
# folder, or URLs) and from uploads; agents search it when they list it
# under knowledge.
kind: Knowledge
version: 1
name: {{name}}
description: What these documents are about.
# sources: [docs/*.md]
chunking:
  strategy: markdown
  size: 400
  overlap: 40
embedder: local
store: embedded
search:
  mode: hybrid
  top_k: 5
`},
	{Kind: "model", Title: "Model", content: `# A named model: agents and teams say model: {{name}}. This one talks to an
# OpenAI-compatible server (Ollama here; vLLM and LM Studio work the same).
kind: Model
version: 1
name: {{name}}
provider: ollama
model: llama3.2
base_url: ${OLLAMA_BASE_URL:-http://localhost:11434/v1}
temperature: 0.7
`},
}

// Filled is a template with its name filled in.
type Filled struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Content string `json:"content"`
}

// Template returns the template of kind named name, and the path it
// suggests for it (name.yaml; in the first folder when there are several).
// An empty name is new-<kind>.
func (s *Service) Template(kind, name string) (*Filled, error) {
	var tpl *Template
	kinds := make([]string, len(Templates))
	for i := range Templates {
		kinds[i] = Templates[i].Kind
		if Templates[i].Kind == kind {
			tpl = &Templates[i]
		}
	}
	if tpl == nil {
		return nil, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("unknown template %q: use one of %s", kind, strings.Join(kinds, ", "))}
	}
	if name == "" {
		name = "new-" + kind
	}
	// The team and workflow templates name agents after them: leave room
	// for the longest suffix within the 63 bytes a name may have.
	if !spec.ValidName(name) || !spec.ValidName(name+"-researcher") {
		return nil, &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("name %q is not allowed: use lower-case letters, digits, '-' and '_', starting with a letter or digit, at most 52 characters", name)}
	}
	p := name + ".yaml"
	if len(s.folders) > 1 {
		p = s.folders[0].name + "/" + p
	}
	return &Filled{Kind: kind, Path: p, Content: strings.ReplaceAll(tpl.content, "{{name}}", name)}, nil
}
