// Package web embeds the console's static assets: our stylesheet and script,
// and htmx, vendored from the npm registry and pinned by version and checksum
// (no CDN, so the console works offline and cannot be changed from outside).
//
// To update htmx: npm pack htmx.org@VERSION, copy package/dist/htmx.min.js
// and package/LICENSE here, and update HTMXVersion and HTMXSHA256; the test
// checks the file against them.
//
// The editor page's bundle, static/editor/editor.js, is CodeMirror 6 with our
// page script, built from web/editor (npm packages pinned by its
// package-lock.json, bundled and minified by esbuild) and committed with the
// licences of what it bundles (static/editor/LICENSES.txt). Only the editor
// page loads it. To rebuild it after changing web/editor/src or the pinned
// versions: cd web/editor && npm ci && npm run build; CI rebuilds it the same
// way and fails if the committed bundle differs.
package web
