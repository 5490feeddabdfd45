package gateway

import (
	"net/http"

	"github.com/labstack/echo/v5"
)

// GetOpenAPI answers GET /openapi.json.
func (s *server) GetOpenAPI(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSONBlob(http.StatusOK, s.spec)
}

// GetDocs answers GET /docs with Swagger UI, loaded from jsDelivr as FastAPI
// does, so the binary carries no UI assets.
func (s *server) GetDocs(c *echo.Context) error {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "+
		"style-src https://cdn.jsdelivr.net 'unsafe-inline'; img-src 'self' data: https://cdn.jsdelivr.net; "+
		"connect-src 'self'; frame-ancestors 'none'")
	h.Set("Cache-Control", "public, max-age=300")
	return c.HTML(http.StatusOK, docsPage)
}

const docsPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>FleetPilot Gateway - API docs</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
`
