// Package web will embed the console's static assets (htmx and CSS, vendored and
// pinned). It is empty until the console milestone lands.
package web
