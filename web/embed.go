// Package web embeds the browser assets: page templates, static files and
// the translation catalogues (French first, English).
package web

import "embed"

// FS holds templates/, static/ and locales/.
//
//go:embed templates static locales
var FS embed.FS
