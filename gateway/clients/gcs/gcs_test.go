package gcs

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

func testStore(t *testing.T) (*Store, *rsa.PublicKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, key)})
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "docs@proj.iam.gserviceaccount.com", "private_key": string(pemKey)})
	client, err := storage.NewClient(context.Background(), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Bucket: "fleet-docs", ServiceAccountJSON: string(sa)}, client)
	if err != nil {
		t.Fatal(err)
	}
	return s, &key.PublicKey
}

func mustPKCS8(t *testing.T, k *rsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifyV4 checks a V4 signed URL the way GCS does, for the given method and
// headers: it rebuilds the canonical request and verifies the RSA signature.
func verifyV4(t *testing.T, pub *rsa.PublicKey, raw, method string, headers map[string]string) error {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	q := u.Query()
	sig, err := hex.DecodeString(q.Get("X-Goog-Signature"))
	if err != nil {
		return err
	}
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var params []string
	for k, vs := range q {
		if k == "X-Goog-Signature" {
			continue
		}
		for _, v := range vs {
			params = append(params, esc(k)+"="+esc(v))
		}
	}
	sort.Strings(params)
	h := map[string]string{"host": u.Host}
	for k, v := range headers {
		h[strings.ToLower(k)] = v
	}
	signed := strings.Split(q.Get("X-Goog-SignedHeaders"), ";")
	var canonHeaders strings.Builder
	for _, name := range signed {
		v, ok := h[name]
		if !ok {
			return fmt.Errorf("signed header %s not sent", name)
		}
		canonHeaders.WriteString(name + ":" + v + "\n")
	}
	creq := strings.Join([]string{method, u.EscapedPath(), strings.Join(params, "&"), canonHeaders.String(), q.Get("X-Goog-SignedHeaders"), "UNSIGNED-PAYLOAD"}, "\n")
	sum := sha256.Sum256([]byte(creq))
	cred := strings.SplitN(q.Get("X-Goog-Credential"), "/", 2)
	sts := strings.Join([]string{"GOOG4-RSA-SHA256", q.Get("X-Goog-Date"), cred[1], hex.EncodeToString(sum[:])}, "\n")
	digest := sha256.Sum256([]byte(sts))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
}

func TestSignedUpload(t *testing.T) {
	s, pub := testStore(t)
	before := time.Now()
	object := ObjectPath("t1", "vehicle", "v1", "pcn", "d1", "PCN notice 1.pdf")
	up, err := s.SignedUpload(context.Background(), object, "application/pdf", 12345, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(up.URL)
	q := u.Query()
	checks := map[string]string{
		"scheme":               u.Scheme,
		"host":                 u.Host,
		"path":                 u.EscapedPath(),
		"X-Goog-Algorithm":     q.Get("X-Goog-Algorithm"),
		"X-Goog-Expires":       fmt.Sprint(q.Get("X-Goog-Expires") == "900" || q.Get("X-Goog-Expires") == "899"),
		"X-Goog-SignedHeaders": q.Get("X-Goog-SignedHeaders"),
		"X-Goog-Credential":    strings.SplitN(q.Get("X-Goog-Credential"), "/", 2)[0],
		"method":               up.Method,
		"header content type":  up.Headers["Content-Type"],
		"header length range":  up.Headers["x-goog-content-length-range"],
		"header create only":   up.Headers["x-goog-if-generation-match"],
		"expires":              fmt.Sprint(up.Expires.Sub(before).Round(time.Minute)),
	}
	want := map[string]string{
		"scheme":               "https",
		"host":                 "storage.googleapis.com",
		"path":                 "/fleet-docs/t1/vehicle/v1/pcn/d1_PCN_notice_1.pdf",
		"X-Goog-Algorithm":     "GOOG4-RSA-SHA256",
		"X-Goog-Expires":       "true",
		"X-Goog-SignedHeaders": "content-type;host;x-goog-content-length-range;x-goog-if-generation-match",
		"X-Goog-Credential":    "docs@proj.iam.gserviceaccount.com",
		"method":               "PUT",
		"header content type":  "application/pdf",
		"header length range":  "12345,12345",
		"header create only":   "0",
		"expires":              "15m0s",
	}
	for k, w := range want {
		if checks[k] != w {
			t.Errorf("%s = %q, want %q", k, checks[k], w)
		}
	}
	// The signature binds method, content type and size: GCS would refuse any change.
	if err := verifyV4(t, pub, up.URL, "PUT", up.Headers); err != nil {
		t.Errorf("signature does not verify with the returned headers: %v", err)
	}
	tampered := []struct {
		name    string
		method  string
		headers map[string]string
	}{
		{"GET instead of PUT", "GET", up.Headers},
		{"other content type", "PUT", map[string]string{"Content-Type": "image/png", "x-goog-content-length-range": "12345,12345"}},
		{"other size", "PUT", map[string]string{"Content-Type": "application/pdf", "x-goog-content-length-range": "0,99999999", "x-goog-if-generation-match": "0"}},
		// The URL can only create the object: without the precondition, or
		// with another generation, it would overwrite verified bytes.
		{"without the create-only precondition", "PUT", map[string]string{"Content-Type": "application/pdf", "x-goog-content-length-range": "12345,12345"}},
		{"overwriting a generation", "PUT", map[string]string{"Content-Type": "application/pdf", "x-goog-content-length-range": "12345,12345", "x-goog-if-generation-match": "1764500000000000"}},
	}
	for _, tc := range tampered {
		if err := verifyV4(t, pub, up.URL, tc.method, tc.headers); err == nil {
			t.Errorf("%s: signature still verifies", tc.name)
		}
	}
}

func TestSignedDownload(t *testing.T) {
	s, pub := testStore(t)
	u, exp, err := s.SignedDownload(context.Background(), "t1/vehicle/v1/pcn/d1_a.pdf", "Ticket \"Nov\"\r\n; é.pdf", 0, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := url.Parse(u)
	q := p.Query()
	if (q.Get("X-Goog-Expires") != "300" && q.Get("X-Goog-Expires") != "299") || q.Get("X-Goog-SignedHeaders") != "host" || time.Until(exp) > 5*time.Minute {
		t.Errorf("download URL %s", u)
	}
	want := `attachment; filename="Ticket _Nov__ _.pdf"; filename*=UTF-8''Ticket%20%22Nov%22%3B%20%C3%A9.pdf`
	if got := q.Get("response-content-disposition"); got != want {
		t.Errorf("disposition = %s\nwant          %s", got, want)
	}
	if err := verifyV4(t, pub, u, "GET", nil); err != nil {
		t.Errorf("signature: %v", err)
	}
	if err := verifyV4(t, pub, u, "PUT", nil); err == nil {
		t.Error("download URL also signs PUT")
	}
}

func TestSafeFilename(t *testing.T) {
	tests := map[string]string{
		"PCN notice.pdf":                  "PCN_notice.pdf",
		"../../etc/passwd":                "etc_passwd",
		"..":                              "file",
		"":                                "file",
		"   ":                             "file",
		".hidden":                         "hidden",
		"a\x00b\nc\r.pdf":                 "a_b_c_.pdf",
		"c:\\windows\\system32.dll":       "c_windows_system32.dll",
		"ﬁle／name．pdf":                    "file_name.pdf",
		"パーキング.jpg":                       "jpg",
		"report..final...pdf":             "report.final.pdf",
		strings.Repeat("a", 300) + ".pdf": strings.Repeat("a", 116) + ".pdf",
	}
	for in, want := range tests {
		if got := SafeFilename(in); got != want {
			t.Errorf("SafeFilename(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzObjectPath: whatever the filename, the object stays inside its prefix,
// in one segment, with nothing unsafe in it.
func FuzzObjectPath(f *testing.F) {
	for _, s := range []string{"", "..", "../x", "a/b", "a\\b", "／", "\u2215", "x\x00", strings.Repeat("é", 200), ".pdf", "con.pdf"} {
		f.Add(s)
	}
	const prefix = "t1/vehicle/v1/pcn/"
	f.Fuzz(func(t *testing.T, name string) {
		p := ObjectPath("t1", "vehicle", "v1", "pcn", "d1", name)
		if !strings.HasPrefix(p, prefix+"d1_") {
			t.Fatalf("path %q escapes its prefix", p)
		}
		last := strings.TrimPrefix(p, prefix)
		if strings.Contains(last, "/") || strings.Contains(last, "\\") || strings.Contains(last, "..") || len(last) > 3+maxFilenameBytes {
			t.Fatalf("unsafe last segment %q", last)
		}
		for _, r := range last {
			if r < 0x20 || r > 0x7e {
				t.Fatalf("non-printable or non-ASCII %q in %q", r, last)
			}
		}
		d := ContentDisposition(name)
		if strings.ContainsAny(d, "\r\n\x00") || strings.Count(d, `"`) != 2 {
			t.Fatalf("unsafe disposition %q", d)
		}
	})
}

// TestSignedDownloadPinned: a download URL names the generation verified at
// completion, inside the signature, so it cannot be pointed at other bytes.
func TestSignedDownloadPinned(t *testing.T) {
	s, pub := testStore(t)
	u, _, err := s.SignedDownload(context.Background(), "t1/vehicle/v1/pcn/d1_a.pdf", "a.pdf", 1764500000123456, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := url.Parse(u)
	if g := p.Query().Get("generation"); g != "1764500000123456" {
		t.Fatalf("generation = %q in %s", g, u)
	}
	if err := verifyV4(t, pub, u, "GET", nil); err != nil {
		t.Errorf("signature: %v", err)
	}
	q := p.Query()
	q.Set("generation", "1764500000999999")
	p.RawQuery = q.Encode()
	if err := verifyV4(t, pub, p.String(), "GET", nil); err == nil {
		t.Error("the signature still verifies with another generation")
	}
	q.Del("generation")
	p.RawQuery = q.Encode()
	if err := verifyV4(t, pub, p.String(), "GET", nil); err == nil {
		t.Error("the signature still verifies without the generation")
	}
}
