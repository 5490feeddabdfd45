package localstack

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// APIGateway stands in for Supabase's API gateway: /rest/v1/* goes to
// PostgREST after the apikey check Supabase does, and Auth's JWKS is served
// from the local signing key.
type APIGateway struct {
	proxy *httputil.ReverseProxy
	jwks  []byte
	// keys maps each accepted apikey to the JWT PostgREST gets for it.
	keys map[string]string
}

// NewAPIGateway proxies to PostgREST at postgrestURL.
func NewAPIGateway(postgrestURL string, k Keys) (*APIGateway, error) {
	target, err := url.Parse(postgrestURL)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.ResponseHeaderTimeout = 30 * time.Second
	return &APIGateway{
		proxy: &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				r.SetURL(target)
				r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/rest/v1")
				r.Out.URL.RawPath = ""
			},
			Transport: t,
		},
		jwks: k.JWKS(),
		keys: map[string]string{
			SecretKey:        k.ServiceRoleJWT,
			PublishableKey:   k.AnonJWT,
			k.ServiceRoleJWT: k.ServiceRoleJWT,
			k.AnonJWT:        k.AnonJWT,
		},
	}, nil
}

func (g *APIGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/auth/v1/.well-known/jwks.json":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=600")
		_, _ = w.Write(g.jwks)
	case strings.HasPrefix(r.URL.Path, "/rest/v1/"):
		g.rest(w, r)
	default:
		writeJSON(w, http.StatusNotFound, `{"message":"no Route matched with those values"}`)
	}
}

// rest applies Supabase's key rules: an unknown apikey is 401; an opaque
// sb_ key is swapped for the matching role's JWT; an sb_ key in
// Authorization is refused unless it equals the apikey; a JWT in
// Authorization is passed through for PostgREST to verify.
func (g *APIGateway) rest(w http.ResponseWriter, r *http.Request) {
	apikey := r.Header.Get("apikey")
	roleJWT, ok := g.keys[apikey]
	if !ok {
		writeJSON(w, http.StatusUnauthorized, `{"message":"Invalid API key","hint":"Double check your Supabase anon or service_role API key."}`)
		return
	}
	auth := r.Header.Get("Authorization")
	bearer, isBearer := strings.CutPrefix(auth, "Bearer ")
	switch {
	case auth == "":
		r.Header.Set("Authorization", "Bearer "+roleJWT)
	case isBearer && strings.HasPrefix(bearer, "sb_"):
		if bearer != apikey {
			writeJSON(w, http.StatusUnauthorized, `{"message":"Invalid JWT"}`)
			return
		}
		r.Header.Set("Authorization", "Bearer "+roleJWT)
	}
	g.proxy.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
