package localstack

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// CORSRule is one entry of a bucket's CORS configuration, in the JSON shape
// `gcloud storage buckets update --cors-file` takes.
type CORSRule struct {
	Origin         []string `json:"origin"`
	Method         []string `json:"method"`
	ResponseHeader []string `json:"responseHeader"`
	MaxAgeSeconds  int      `json:"maxAgeSeconds"`
}

// AppCORS is the CORS configuration the documents bucket needs for the app
// at origins: the browser PUTs with the signed headers and reads back the
// generation. docs/deploy.md gives the same rules for the real bucket.
func AppCORS(origins ...string) []CORSRule {
	if len(origins) == 0 {
		return nil
	}
	return []CORSRule{{
		Origin: origins,
		Method: []string{"PUT", "GET", "HEAD"},
		ResponseHeader: []string{"Content-Type", "x-goog-content-length-range", "x-goog-if-generation-match",
			"ETag", "x-goog-generation"},
		MaxAgeSeconds: 3600,
	}}
}

// objectLookup reads an object's current state (the emulator's own store).
type objectLookup interface {
	GetObject(bucket, name string) (fakestorage.Object, error)
}

// storageFront does what GCS does before a signed XML-API request reaches
// the object store; everything else (the JSON API the gateway's client
// uses) goes straight to the emulator.
type storageFront struct {
	next     http.Handler
	objects  objectLookup
	bucket   string
	accessID string
	pub      *rsa.PublicKey
	now      func() time.Time

	mu   sync.Mutex // guards cors
	cors []CORSRule
	// writes serialises precondition checks with the writes they guard, so
	// two create-only PUTs cannot both succeed.
	writes sync.Mutex
}

func (f *storageFront) setCORS(rules []CORSRule) {
	f.mu.Lock()
	f.cors = rules
	f.mu.Unlock()
}

// jsonAPI are the emulator's JSON-API routes (not bucket paths).
var jsonAPI = []string{"/storage/v1/", "/upload/storage/v1/", "/download/storage/v1/", "/batch/", "/_internal/"}

func (f *storageFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, p := range jsonAPI {
		if strings.HasPrefix(r.URL.Path, p) {
			f.next.ServeHTTP(w, r)
			return
		}
	}
	origin := r.Header.Get("Origin")
	if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		f.preflight(w, r)
		return
	}
	if origin != "" {
		if rule, ok := f.corsRule(origin, r.Method, nil); ok {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", strings.Join(rule.ResponseHeader, ","))
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		// The emulator's own CORS layer allows every origin; GCS applies only
		// the bucket's rules, set above.
		r.Header.Del("Origin")
	}
	if r.URL.Query().Get("X-Goog-Signature") == "" {
		gcsError(w, http.StatusForbidden, "AccessDenied", "Access denied.",
			"Anonymous caller does not have storage.objects access to the local bucket (sign the URL).")
		return
	}
	if err := f.verify(r); err != nil {
		var ge *gcsErr
		if errors.As(err, &ge) {
			ge.write(w)
			return
		}
		gcsError(w, http.StatusBadRequest, "InvalidArgument", "Invalid argument.", err.Error())
		return
	}
	f.object(w, r)
}

// object applies the length range and generation preconditions, and a
// read's pinned generation, then hands the request to the emulator.
func (f *storageFront) object(w http.ResponseWriter, r *http.Request) {
	bucket, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != f.bucket {
		gcsError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.", "")
		return
	}
	if r.Method == http.MethodPut {
		if rng := r.Header.Get("x-goog-content-length-range"); rng != "" {
			lo, hi, ok := parseLengthRange(rng)
			if !ok {
				gcsError(w, http.StatusBadRequest, "InvalidArgument", "Invalid argument.", "Invalid x-goog-content-length-range: "+rng)
				return
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, hi+1))
			if err != nil {
				gcsError(w, http.StatusBadRequest, "IncompleteBody", "The request body is incomplete.", err.Error())
				return
			}
			n := int64(len(body))
			if r.ContentLength > n {
				n = r.ContentLength
			}
			switch {
			case n > hi:
				gcsError(w, http.StatusBadRequest, "EntityTooLarge", "Your proposed upload is larger than the maximum object size specified in your Policy Document.",
					fmt.Sprintf("Content-length exceeds upper bound on range (%d > %d)", n, hi))
				return
			case n < lo:
				gcsError(w, http.StatusBadRequest, "EntityTooSmall", "Your proposed upload is smaller than the minimum object size specified in your Policy Document.",
					fmt.Sprintf("Content-length is smaller than lower bound on range (%d < %d)", n, lo))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		f.writes.Lock()
		defer f.writes.Unlock()
	}
	if g := r.URL.Query().Get("generation"); g != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// A read pinned to a generation finds only those bytes, as in GCS:
		// the bucket keeps no old generations, so any other is gone.
		want, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			gcsError(w, http.StatusBadRequest, "InvalidArgument", "Invalid argument.", "Invalid generation: "+g)
			return
		}
		if obj, err := f.objects.GetObject(bucket, name); err != nil || obj.Generation != want {
			gcsError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", "")
			return
		}
	}
	if v := r.Header.Get("x-goog-if-generation-match"); v != "" {
		want, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			gcsError(w, http.StatusBadRequest, "InvalidArgument", "Invalid argument.", "Invalid x-goog-if-generation-match: "+v)
			return
		}
		var have int64 // 0: the object does not exist
		if obj, err := f.objects.GetObject(bucket, name); err == nil {
			have = obj.Generation
		}
		if have != want {
			gcsError(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.",
				"Precondition: x-goog-if-generation-match")
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

func parseLengthRange(s string) (lo, hi int64, ok bool) {
	a, b, found := strings.Cut(s, ",")
	if !found {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	hi, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	return lo, hi, err1 == nil && err2 == nil && lo >= 0 && lo <= hi
}

// preflight answers a CORS preflight from the bucket's rules: the origin,
// the method and every requested header must be allowed by one rule (GCS
// matches request headers against the rule's responseHeader list).
func (f *storageFront) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	var reqHeaders []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				reqHeaders = append(reqHeaders, h)
			}
		}
	}
	rule, ok := f.corsRule(origin, r.Header.Get("Access-Control-Request-Method"), reqHeaders)
	if !ok {
		gcsError(w, http.StatusForbidden, "AccessDenied", "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.", "")
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", strings.Join(rule.Method, ","))
	if len(reqHeaders) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(reqHeaders, ","))
	}
	if rule.MaxAgeSeconds > 0 {
		h.Set("Access-Control-Max-Age", strconv.Itoa(rule.MaxAgeSeconds))
	}
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusOK)
}

func (f *storageFront) corsRule(origin, method string, headers []string) (CORSRule, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rule := range f.cors {
		if !slices.Contains(rule.Origin, origin) && !slices.Contains(rule.Origin, "*") {
			continue
		}
		if !slices.ContainsFunc(rule.Method, func(m string) bool { return strings.EqualFold(m, method) }) {
			continue
		}
		allowed := true
		for _, h := range headers {
			if !slices.ContainsFunc(rule.ResponseHeader, func(x string) bool { return strings.EqualFold(x, h) }) {
				allowed = false
				break
			}
		}
		if allowed {
			return rule, true
		}
	}
	return CORSRule{}, false
}

const (
	v4Algorithm  = "GOOG4-RSA-SHA256"
	v4TimeFormat = "20060102T150405Z"
	maxV4Expires = 7 * 24 * 3600
)

// verify checks a V4-signed request as GCS does: algorithm, credential
// scope, date and expiry, then the signature over the canonical request
// rebuilt from what was actually sent (method, path, query, the signed
// headers' values).
func (f *storageFront) verify(r *http.Request) error {
	q := r.URL.Query()
	if q.Get("X-Goog-Algorithm") != v4Algorithm {
		return newGCSErr(http.StatusBadRequest, "InvalidArgument", "Invalid argument.", "Only "+v4Algorithm+" signed URLs are supported locally.")
	}
	date, err := time.Parse(v4TimeFormat, q.Get("X-Goog-Date"))
	if err != nil {
		return newGCSErr(http.StatusBadRequest, "AuthorizationQueryParametersError", "Error parsing the X-Goog-Date parameter.", "")
	}
	expires, err := strconv.Atoi(q.Get("X-Goog-Expires"))
	if err != nil || expires < 1 || expires > maxV4Expires {
		return newGCSErr(http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Goog-Expires must be between 1 and 604800 seconds.", "")
	}
	now := f.now()
	if now.Before(date.Add(-15 * time.Minute)) {
		return newGCSErr(http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Goog-Date is in the future.", "")
	}
	if end := date.Add(time.Duration(expires) * time.Second); !now.Before(end) {
		return newGCSErr(http.StatusBadRequest, "ExpiredToken", "Invalid argument.",
			"The provided token has expired. Request signature expired at: "+end.UTC().Format(time.RFC3339))
	}
	scope := date.Format("20060102") + "/auto/storage/goog4_request"
	if cred := q.Get("X-Goog-Credential"); cred != f.accessID+"/"+scope {
		return newGCSErr(http.StatusBadRequest, "AuthorizationQueryParametersError", "Invalid credential: "+cred, "")
	}
	sig, err := hex.DecodeString(q.Get("X-Goog-Signature"))
	if err != nil {
		return newGCSErr(http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Goog-Signature is not hexadecimal.", "")
	}
	canonical := canonicalRequest(r, q)
	sum := sha256.Sum256([]byte(canonical))
	stringToSign := v4Algorithm + "\n" + q.Get("X-Goog-Date") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	digest := sha256.Sum256([]byte(stringToSign))
	if rsa.VerifyPKCS1v15(f.pub, crypto.SHA256, digest[:], sig) != nil {
		return &gcsErr{status: http.StatusForbidden, code: "SignatureDoesNotMatch",
			message:      "The request signature we calculated does not match the signature you provided. Check your Google secret key and signing method.",
			stringToSign: stringToSign, canonicalRequest: canonical}
	}
	return nil
}

// canonicalRequest is GCS's V4 canonical request for r. The host is
// compared without its port: the client library signs the hostname only,
// and real GCS is reached on the default port.
func canonicalRequest(r *http.Request, q url.Values) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	segs := strings.Split(r.URL.Path, "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	}
	b.WriteString(strings.Join(segs, "/") + "\n")
	cq := url.Values{}
	for k, v := range q {
		if k != "X-Goog-Signature" {
			cq[k] = v
		}
	}
	b.WriteString(strings.ReplaceAll(cq.Encode(), "+", "%20") + "\n")
	signed := strings.Split(q.Get("X-Goog-SignedHeaders"), ";")
	sort.Strings(signed)
	payload := "UNSIGNED-PAYLOAD"
	for _, name := range signed {
		var v string
		if name == "host" {
			v = r.Host
			if h, _, err := net.SplitHostPort(v); err == nil {
				v = h
			}
		} else {
			v = strings.Join(r.Header.Values(name), ",")
		}
		v = strings.Join(strings.Fields(v), " ")
		if name == "x-goog-content-sha256" {
			payload = v
		}
		b.WriteString(name + ":" + v + "\n")
	}
	b.WriteString("\n" + strings.Join(signed, ";") + "\n" + payload)
	return b.String()
}

// gcsErr is an XML-API error answer.
type gcsErr struct {
	status                         int
	code, message, details         string
	stringToSign, canonicalRequest string
}

func newGCSErr(status int, code, message, details string) *gcsErr {
	return &gcsErr{status: status, code: code, message: message, details: details}
}

func (e *gcsErr) Error() string { return e.code + ": " + e.message }

func (e *gcsErr) write(w http.ResponseWriter) {
	body, _ := xml.Marshal(struct {
		XMLName          xml.Name `xml:"Error"`
		Code             string   `xml:"Code"`
		Message          string   `xml:"Message"`
		Details          string   `xml:"Details,omitempty"`
		StringToSign     string   `xml:"StringToSign,omitempty"`
		CanonicalRequest string   `xml:"CanonicalRequest,omitempty"`
	}{Code: e.code, Message: e.message, Details: e.details, StringToSign: e.stringToSign, CanonicalRequest: e.canonicalRequest})
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

func gcsError(w http.ResponseWriter, status int, code, message, details string) {
	(&gcsErr{status: status, code: code, message: message, details: details}).write(w)
}
