package supabase

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jarcoal/httpmock"
)

// unquote reads one quoted value as PostgREST's pQuotedValue does and returns
// the rest of the input.
func unquote(s string) (string, string, bool) {
	if len(s) == 0 || s[0] != '"' {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false
}

// FuzzQuoteValue: a quoted value always reads back as itself and ends exactly
// at its closing quote, so it can never end an in.(...) list early.
func FuzzQuoteValue(f *testing.F) {
	for _, s := range []string{"", "a", `a,b`, `a)b`, `"`, `\`, `\"`, `",tenant_id.eq.x`, "é\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, rest, ok := unquote(QuoteValue(v))
		if !ok || got != v || rest != "" {
			t.Fatalf("QuoteValue(%q) = %q reads back as %q rest %q ok %v", v, QuoteValue(v), got, rest, ok)
		}
	})
}

// FuzzEqValue: whatever the value, the query has one tenant filter (the
// builder's) and the value stays inside its own parameter.
func FuzzEqValue(f *testing.F) {
	for _, s := range []string{"open", "open&tenant_id=eq.x", "a+b c", "%26", "=", "open,tenant_id.eq.x", "#frag", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		mt := httpmock.NewMockTransport()
		var raw string
		mt.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
			raw = r.URL.RawQuery
			return httpmock.NewStringResponse(200, `[]`), nil
		})
		c := New(Config{URL: "https://p.supabase.co", ServiceKey: "k"}, &http.Client{Transport: mt})
		tid, _ := ParseTenantID(tenant)
		if _, err := c.From(tid, "incidents").Eq("status", v).In("type", v, v).List(context.Background()); err != nil {
			t.Fatal(err)
		}
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("unparseable query %q: %v", raw, err)
		}
		if got := q["tenant_id"]; len(got) != 1 || got[0] != "eq."+tenant {
			t.Fatalf("tenant_id = %v for %q", got, v)
		}
		if got := q["status"]; len(got) != 1 || got[0] != "eq."+v {
			t.Fatalf("status = %v for %q", got, v)
		}
		if len(q) != 4 {
			t.Fatalf("parameters %v for %q", q, v)
		}
		in := strings.TrimSuffix(strings.TrimPrefix(q.Get("type"), "in.("), ")")
		a, rest, ok := unquote(in)
		if !ok || a != v || !strings.HasPrefix(rest, ",") {
			t.Fatalf("in list %q does not split into the two values", in)
		}
		if b, rest, ok := unquote(rest[1:]); !ok || b != v || rest != "" {
			t.Fatalf("in list %q: second value %q rest %q", in, b, rest)
		}
	})
}
