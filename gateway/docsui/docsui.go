// Package docsui embeds the documentation UI's assets (swagger-ui-dist 5.32.0
// from npm, Apache-2.0, see LICENSE), so /docs works offline and loads nothing
// from a CDN. To update: `npm pack swagger-ui-dist@<version>`, copy
// swagger-ui-bundle.js and swagger-ui.css here without their sourceMappingURL line.
package docsui

import "embed"

// Version is the pinned swagger-ui-dist release of the embedded files.
const Version = "5.32.0"

//go:embed swagger-ui-bundle.js swagger-ui.css
var Assets embed.FS
