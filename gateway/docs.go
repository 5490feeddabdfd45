package gateway

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/docsui"
)

// GetOpenAPI answers GET /openapi.json.
func (s *server) GetOpenAPI(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSONBlob(http.StatusOK, s.spec)
}

// GetDocs answers GET /docs with Swagger UI. Its assets are embedded in the
// binary (package docsui), so the page works offline and the CSP allows
// nothing from outside the gateway.
func (s *server) GetDocs(c *echo.Context) error {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self' 'unsafe-inline'; "+
		"style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
	h.Set("Cache-Control", "public, max-age=300")
	return c.HTML(http.StatusOK, docsPage)
}

// docsContentTypes are the embedded assets and how they are served.
var docsContentTypes = map[api.GetDocsAssetParamsAsset]string{
	api.SwaggerUiBundleJs: "text/javascript; charset=utf-8",
	api.SwaggerUiCss:      "text/css; charset=utf-8",
}

// GetDocsAsset answers GET /docs/assets/{asset} from the embedded files.
func (s *server) GetDocsAsset(c *echo.Context, asset api.GetDocsAssetParamsAsset) error {
	ct, ok := docsContentTypes[asset]
	if !ok {
		return notFound("Not Found")
	}
	b, err := docsui.Assets.ReadFile(string(asset))
	if err != nil {
		return fmt.Errorf("docs asset %s: %w", asset, err)
	}
	// The assets change only with the binary; the version in the page's URLs
	// makes a new build fetch them again.
	c.Response().Header().Set("Cache-Control", "public, max-age=86400")
	return c.Blob(http.StatusOK, ct, b)
}

const docsPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>FleetPilot Gateway - API docs</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css?v=` + docsui.Version + `">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js?v=` + docsui.Version + `"></script>
<script>
SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
`
