package view

import "net/url"

// Editor is the editor page: the frame CodeMirror runs in. The bundle lists,
// opens, checks and saves the files itself, through the editor's routes.
type Editor struct {
	// Path opens a file (relative to the spec folder, slash-separated);
	// New starts a file from the template of that kind. Both come from the
	// query and are read again by the script; they are shown before it runs.
	Path, New string
	// Schema is the JSON Schema's URL, versioned so it is cached.
	Schema string
	// Script and Style are the bundle's versioned URLs.
	Script, Style string
}

// EditURL is the editor page opening path; "" (not editable, or the key may
// not edit) is no link.
func EditURL(path string) string {
	if path == "" {
		return ""
	}
	return "/ui/editor?path=" + url.QueryEscape(path)
}

// newKinds are the templates the config page offers: the kinds people start
// most; the editor page lists them all.
var newKinds = []struct{ Kind, Label string }{
	{"agent", "New agent…"}, {"team", "New team…"}, {"workflow", "New workflow…"},
}
