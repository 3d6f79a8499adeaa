// Package web embeds the console's static assets: our stylesheet and script,
// and htmx, vendored from the npm registry and pinned by version and checksum
// (no CDN, so the console works offline and cannot be changed from outside).
//
// To update htmx: npm pack htmx.org@VERSION, copy package/dist/htmx.min.js
// and package/LICENSE here, and update HTMXVersion and HTMXSHA256; the test
// checks the file against them.
package web
