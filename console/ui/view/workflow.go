package view

// WorkflowRow is one workflow of the Workflows page.
type WorkflowRow struct {
	Name, Description, Status string
	StepCount                 int // every step, nested ones included
}

// Workflows is the Workflows page: the serving workflows, and the
// diagnostics of those that are not served.
type Workflows struct {
	Rows   []WorkflowRow
	Broken []Diagnostic
}

// WorkflowPage is one workflow's page.
type WorkflowPage struct {
	WorkflowRow
	File string
	// Edit opens File in the editor; "" for keys that may not edit.
	Edit        string
	InputSchema string // indented JSON
	Output      string // output template; empty: the last step's output
	// OutputSchema is the indented JSON Schema the output must match; empty
	// when the workflow declares none.
	OutputSchema string
	Timeout      string
	Steps        []WorkflowStep
	Diagnostics  []Diagnostic
	// Fields are the runner's form; CanRun says whether the user may run it.
	Fields []FormField
	CanRun bool
	// Runs are the workflow's recent runs, newest first.
	Runs []WorkflowRunRow
}

// WorkflowStep is a step of a workflow page's graph. Target is what an
// agent, team or workflow step runs (TargetKind says which); Detail is the
// step's expression or bound; Branches are a parallel's branches, a
// condition's then and else, a loop's body and a router's choices.
type WorkflowStep struct {
	Name, Kind         string
	Target, TargetKind string
	Detail             string
	Branches           []WorkflowBranch
}

// WorkflowBranch is a labelled sequence of steps inside a step.
type WorkflowBranch struct {
	Label string
	Steps []WorkflowStep
}

// StepGraph is a workflow's steps laid out as an SVG drawing: sequential
// steps top to bottom, branches side by side inside labelled frames.
type StepGraph struct {
	W, H   float64
	Nodes  []GraphNode
	Edges  []GraphEdge
	Frames []GraphFrame
}

// GraphNode is a step's box.
type GraphNode struct {
	X, Y, W, H   float64
	Name, Kind   string
	Line         string // what the step runs or decides, clipped
	Title        string // the same, whole, for the tooltip
	Href         string // the agent, team or nested workflow's page
	Fill, Stroke string
	Approval     bool // drawn with a double outline: the run pauses here
	TargetKind   string
	Target       string
	// Status is the step's status in a run (a run's page and the live
	// runner colour nodes by it); empty on a workflow's own graph.
	Status string
}

// GraphEdge is an arrow between steps.
type GraphEdge struct{ X1, Y1, X2, Y2 float64 }

// GraphFrame surrounds a branch, with its label.
type GraphFrame struct {
	X, Y, W, H float64
	Label      string
}

// The graph's measures, in SVG user units.
const (
	nodeW, nodeH = 190.0, 46.0
	seqGap       = 26.0 // between steps in a sequence
	branchGap    = 14.0 // between branches side by side
	framePad     = 8.0
	frameLabel   = 18.0 // room for a frame's label
	emptyW       = 90.0 // an empty branch (a condition without else)
	emptyH       = 22.0
	graphMargin  = 6.0
)

// stepColours are the fill and stroke of each kind of step.
var stepColours = map[string][2]string{
	"agent":     {"#eef5ff", "#3b6fb6"},
	"team":      {"#eef9f1", "#2f8a4d"},
	"workflow":  {"#f5f0ff", "#6b4bb3"},
	"parallel":  {"#f4f5f7", "#59636e"},
	"condition": {"#fff8e6", "#b07d10"},
	"loop":      {"#fff1ea", "#b8582a"},
	"router":    {"#eaf8f8", "#1f7f86"},
	"approval":  {"#fdecef", "#b3263f"},
}

// piece is a laid-out part of the graph with its origin at (0, 0): entered
// at the middle of its top edge, left at the middle of its bottom edge.
type piece struct {
	w, h float64
	g    StepGraph
}

// add draws p's elements into q shifted by (dx, dy).
func (q *piece) add(p piece, dx, dy float64) {
	for _, n := range p.g.Nodes {
		n.X, n.Y = n.X+dx, n.Y+dy
		q.g.Nodes = append(q.g.Nodes, n)
	}
	for _, e := range p.g.Edges {
		q.g.Edges = append(q.g.Edges, GraphEdge{e.X1 + dx, e.Y1 + dy, e.X2 + dx, e.Y2 + dy})
	}
	for _, f := range p.g.Frames {
		f.X, f.Y = f.X+dx, f.Y+dy
		q.g.Frames = append(q.g.Frames, f)
	}
}

// NewStepGraph lays out a workflow's steps.
func NewStepGraph(steps []WorkflowStep) StepGraph {
	p := sequence(steps)
	var out piece
	out.add(p, graphMargin, graphMargin)
	out.g.W, out.g.H = p.w+2*graphMargin, p.h+2*graphMargin
	return out.g
}

// sequence stacks steps top to bottom, centred, with an arrow between each.
func sequence(steps []WorkflowStep) piece {
	if len(steps) == 0 {
		return piece{w: emptyW, h: emptyH}
	}
	parts := make([]piece, len(steps))
	var out piece
	for i, s := range steps {
		parts[i] = step(s)
		out.w = max(out.w, parts[i].w)
	}
	y := 0.0
	for i, p := range parts {
		if i > 0 {
			out.g.Edges = append(out.g.Edges, GraphEdge{out.w / 2, y - seqGap, out.w / 2, y})
		}
		out.add(p, (out.w-p.w)/2, y)
		y += p.h + seqGap
	}
	out.h = y - seqGap
	return out
}

// step lays out one step: its box, then its branches side by side in
// frames, joined below them.
func step(s WorkflowStep) piece {
	colours, ok := stepColours[s.Kind]
	if !ok {
		colours = stepColours["parallel"]
	}
	line := s.Kind
	switch {
	case s.Target != "":
		line = s.TargetKind + " " + s.Target
	case s.Detail != "":
		line = s.Kind + ": " + s.Detail
	}
	n := GraphNode{W: nodeW, H: nodeH, Name: s.Name, Kind: s.Kind, Line: clip(line, 30), Title: s.Name + " — " + line,
		Fill: colours[0], Stroke: colours[1], Approval: s.Kind == "approval", Target: s.Target, TargetKind: s.TargetKind}
	switch s.TargetKind {
	case "agent", "team", "workflow":
		n.Href = "/ui/" + s.TargetKind + "s/" + s.Target
	}
	if len(s.Branches) == 0 {
		return piece{w: nodeW, h: nodeH, g: StepGraph{Nodes: []GraphNode{n}}}
	}
	frames := make([]piece, len(s.Branches))
	width := -branchGap
	height := 0.0
	for i, b := range s.Branches {
		inner := sequence(b.Steps)
		f := piece{w: inner.w + 2*framePad, h: inner.h + 2*framePad + frameLabel}
		f.g.Frames = append(f.g.Frames, GraphFrame{W: f.w, H: f.h, Label: clip(b.Label, int(f.w/7))})
		f.add(inner, framePad, framePad+frameLabel)
		frames[i] = f
		width += f.w + branchGap
		height = max(height, f.h)
	}
	out := piece{w: max(nodeW, width)}
	n.X = (out.w - nodeW) / 2
	out.g.Nodes = append(out.g.Nodes, n)
	top := nodeH + seqGap
	join := top + height + seqGap
	x := (out.w - width) / 2
	for _, f := range frames {
		mid := x + f.w/2
		out.g.Edges = append(out.g.Edges, GraphEdge{out.w / 2, nodeH, mid, top})
		out.add(f, x, top)
		out.g.Edges = append(out.g.Edges, GraphEdge{mid, top + f.h, out.w / 2, join})
		x += f.w + branchGap
	}
	out.h = join
	return out
}
