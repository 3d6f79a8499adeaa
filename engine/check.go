package engine

import "github.com/troupehq/troupe/spec"

// Check validates the spec folders as the next reload would, with overlay
// (file path → content, paths as the loader lists them: a spec folder joined
// with the file's relative path) in place of those files on disk or added
// to the folder, and returns every diagnostic that reload would report. It
// goes through the reload's own loader and Compile, with the runtime's
// builtins and modules, so that what an editor shows is what a save gives;
// the snapshot it compiles is never served and is retired at once. It is
// safe to call while the reload loop runs and changes nothing it uses.
func (e *Engine) Check(overlay map[string][]byte) (spec.Diagnostics, error) {
	set, err := e.loader.LoadOverlay(overlay, e.dirs...)
	if err != nil {
		return nil, err
	}
	prev := e.current.Load()
	var gen uint64
	if prev != nil {
		gen = prev.generation + 1
	}
	snap := Compile(set, prev, gen, e.now(), e.runtime)
	snap.retire()
	return snap.diagnostics, nil
}
