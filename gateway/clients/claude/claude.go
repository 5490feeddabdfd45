// Package claude reads Penalty Charge Notices with Anthropic's Claude: the
// document goes in as a PDF document block or an image block, and a forced
// strict tool call brings the fields back in a fixed JSON schema.
package claude

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// Errors the PCN pipeline tells apart.
var (
	// ErrTransient is worth retrying later: rate limits, overload, 5xx, timeouts.
	ErrTransient = errors.New("claude: transient failure")
	// ErrInvalidOutput means the model did not return the tool call the schema asks for.
	ErrInvalidOutput = errors.New("claude: invalid extraction")
	// ErrRejected is a permanent refusal of the request (bad input, auth, billing).
	ErrRejected = errors.New("claude: request rejected")
)

// ToolName is the forced tool the model answers through.
const ToolName = "record_pcn"

// Config for the Messages API. The env tags are relative to the ANTHROPIC_
// prefix the gateway's configuration gives this section.
type Config struct {
	// APIKey enables extraction; without it scans end needs_attention.
	APIKey  string `env:"API_KEY"`
	Model   string `env:"MODEL" envDefault:"claude-sonnet-5-5"`
	BaseURL string `env:"BASE_URL"` // empty: the SDK's default (https://api.anthropic.com)
	// Timeout bounds each attempt; zero means 90 s.
	Timeout time.Duration `env:"TIMEOUT" envDefault:"90s"`
	// MaxRetries inside one call; Cloud Tasks owns the long backoff, so keep it small.
	MaxRetries int `env:"MAX_RETRIES" envDefault:"1"`
}

// Validate names each bad setting, one error per variable (keys without the prefix).
func (c Config) Validate() error {
	var p []error
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, errors.New("BASE_URL: must be an http(s) URL"))
		}
	}
	if c.MaxRetries < 0 || c.MaxRetries > 5 {
		p = append(p, errors.New("MAX_RETRIES: must be between 0 and 5"))
	}
	return errors.Join(p...)
}

// Client extracts PCN fields. Safe for concurrent use.
type Client struct {
	c          anthropic.Client
	model      string
	maxRetries int
	sleep      func(context.Context, time.Duration) error
}

// New builds a client that sends its requests with hc.
func New(cfg Config, hc *http.Client) (*Client, error) {
	if cfg.APIKey == "" || cfg.Model == "" {
		return nil, errors.New("claude: API key and model are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 90 * time.Second
	}
	opts := []option.RequestOption{
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0), // Extract retries itself, within the deadline
		option.WithRequestTimeout(cfg.Timeout),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	return &Client{c: anthropic.NewClient(opts...), model: cfg.Model, maxRetries: cfg.MaxRetries, sleep: sleepCtx}, nil
}

// Extraction is what the model read from the notice. Pointers are null when
// the notice does not show the field. Confidences are 0..1.
type Extraction struct {
	IsPenaltyNotice          bool               `json:"is_penalty_notice"`
	NoticeType               string             `json:"notice_type"`
	IssuerType               string             `json:"issuer_type"`
	IssuingAuthority         *string            `json:"issuing_authority"`
	PCNNumber                *string            `json:"pcn_number"`
	VehicleRegistration      *string            `json:"vehicle_registration"`
	VehicleMake              *string            `json:"vehicle_make"`
	VehicleColour            *string            `json:"vehicle_colour"`
	ContraventionCode        *string            `json:"contravention_code"`
	ContraventionDescription *string            `json:"contravention_description"`
	ContraventionDatetime    *string            `json:"contravention_datetime"`
	Location                 *string            `json:"location"`
	DateOfNotice             *string            `json:"date_of_notice"`
	PenaltyAmountPence       *int64             `json:"penalty_amount_pence"`
	DiscountedAmountPence    *int64             `json:"discounted_amount_pence"`
	DiscountDeadline         *string            `json:"discount_deadline"`
	PaymentDueDate           *string            `json:"payment_due_date"`
	FieldConfidence          map[string]float64 `json:"field_confidence"`
	Warnings                 []string           `json:"warnings"`
}

// docPlaceholder stands for the document's base64 in the request shell; the
// streamed body puts the encoded document where it was.
const docPlaceholder = "@@fleetpilot-document-data@@"

// Extract reads one notice. mediaType is application/pdf or an image type.
// The raw tool input is returned too, to be kept with the violation.
//
// The document is held once, as the caller's bytes: the request body is
// streamed, its base64 encoded in small chunks as it is sent, instead of
// building a base64 copy (4/3 of the document) and then a JSON copy of that.
// A streamed body cannot be replayed by the SDK, so retries are made here,
// each one only if its wait ends before ctx's deadline.
func (c *Client) Extract(ctx context.Context, doc []byte, mediaType string) (Extraction, json.RawMessage, error) {
	var block anthropic.ContentBlockParamUnion
	if mediaType == "application/pdf" {
		block = anthropic.NewDocumentBlock(anthropic.Base64PDFSourceParam{Data: docPlaceholder})
	} else {
		block = anthropic.NewImageBlockBase64(mediaType, docPlaceholder)
	}
	params := anthropic.MessageNewParams{
		Model:     anthropic.Model(c.model),
		MaxTokens: 2048,
		System:    []anthropic.TextBlockParam{{Text: systemPrompt}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(block,
			anthropic.NewTextBlock("Read this notice and record it by calling "+ToolName+"."))},
		Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name:        ToolName,
			Description: anthropic.String("Record the fields of a UK parking or traffic penalty notice."),
			Strict:      anthropic.Bool(true),
			InputSchema: inputSchema(),
		}}},
		ToolChoice: anthropic.ToolChoiceParamOfTool(ToolName),
	}
	shell, err := json.Marshal(params)
	if err != nil {
		return Extraction{}, nil, fmt.Errorf("%w: request: %v", ErrRejected, err)
	}
	at := bytes.Index(shell, []byte(docPlaceholder))
	if at < 0 {
		return Extraction{}, nil, fmt.Errorf("%w: request shell has no document slot", ErrRejected)
	}
	prefix, suffix := shell[:at], shell[at+len(docPlaceholder):]
	length := int64(len(prefix) + base64.StdEncoding.EncodedLen(len(doc)) + len(suffix))

	var msg *anthropic.Message
	for try := 0; ; try++ {
		body := io.MultiReader(bytes.NewReader(prefix), &base64Reader{src: doc}, bytes.NewReader(suffix))
		msg, err = c.c.Messages.New(ctx, params,
			option.WithRequestBody("application/json", body),
			option.WithMaxRetries(0),
			option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
				r.ContentLength = length
				return next(r)
			}))
		if err == nil {
			break
		}
		err = classify(err)
		wait, ok := c.retryWait(ctx, err, try)
		if !ok {
			return Extraction{}, nil, err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return Extraction{}, nil, err
		}
	}
	for _, b := range msg.Content {
		tu, ok := b.AsAny().(anthropic.ToolUseBlock)
		if !ok || tu.Name != ToolName {
			continue
		}
		var x Extraction
		dec := json.NewDecoder(bytesReader(tu.Input))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&x); err != nil {
			return Extraction{}, tu.Input, fmt.Errorf("%w: %v", ErrInvalidOutput, err)
		}
		if err := x.validate(); err != nil {
			return Extraction{}, tu.Input, fmt.Errorf("%w: %v", ErrInvalidOutput, err)
		}
		return x, tu.Input, nil
	}
	return Extraction{}, nil, fmt.Errorf("%w: no %s call (stop reason %q)", ErrInvalidOutput, ToolName, msg.StopReason)
}

func (x *Extraction) validate() error {
	if x.NoticeType == "" || x.IssuerType == "" || x.FieldConfidence == nil {
		return errors.New("required fields missing")
	}
	for k, v := range x.FieldConfidence {
		if v < 0 || v > 1 {
			return fmt.Errorf("confidence of %s out of range: %v", k, v)
		}
	}
	for _, p := range []*int64{x.PenaltyAmountPence, x.DiscountedAmountPence} {
		if p != nil && (*p < 0 || *p > 10_000_00) {
			return fmt.Errorf("amount out of range: %d", *p)
		}
	}
	return nil
}

// classify sorts API errors: 408/409/429/5xx/529 and network failures are
// transient; any other status is a permanent rejection. A 429 is the
// vendor's own rate limit (ErrRateLimited), and carries its Retry-After.
func classify(err error) error {
	var ae *anthropic.Error
	if errors.As(err, &ae) {
		switch s := ae.StatusCode; {
		case s == http.StatusTooManyRequests:
			return &retryAfterError{wait: retryAfterOf(ae.Response),
				err: fmt.Errorf("%w: %w: status %d %s: %v", ErrRateLimited, ErrTransient, s, ae.Type(), ae.Message)}
		case s == http.StatusRequestTimeout, s == http.StatusConflict, s >= 500:
			return &retryAfterError{wait: retryAfterOf(ae.Response),
				err: fmt.Errorf("%w: status %d %s: %v", ErrTransient, s, ae.Type(), ae.Message)}
		default:
			return fmt.Errorf("%w: status %d %s: %v", ErrRejected, s, ae.Type(), ae.Message)
		}
	}
	return fmt.Errorf("%w: %v", ErrTransient, err)
}

// ErrRateLimited is Anthropic's own 429: the account's shared rate is used
// up, which says nothing about the document; RetryAfter says when to come back.
var ErrRateLimited = errors.New("claude: rate limited")

// retryAfterError carries the wait the API asked for (zero when it did not).
type retryAfterError struct {
	wait time.Duration
	err  error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter is the wait the API asked for with err, or zero.
func RetryAfter(err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.wait
	}
	return 0
}

func retryAfterOf(res *http.Response) time.Duration {
	if res == nil {
		return 0
	}
	if ms, err := strconv.ParseFloat(res.Header.Get("Retry-After-Ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	v := res.Header.Get("Retry-After")
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// retryWait says whether a transient failure is tried again here and after
// how long: within the retry budget, and only if the wait (the API's
// Retry-After, else 0.5 s doubling) leaves time before ctx's deadline for
// the call itself. Otherwise the failure goes back to the caller, whose
// queue waits instead of this request.
func (c *Client) retryWait(ctx context.Context, err error, try int) (time.Duration, bool) {
	if !errors.Is(err, ErrTransient) || try >= c.maxRetries {
		return 0, false
	}
	wait := RetryAfter(err)
	if wait <= 0 {
		wait = 500 * time.Millisecond << try
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+minCallTime {
		return 0, false
	}
	return wait, true
}

// minCallTime is the least time worth starting an extraction call with.
const minCallTime = 10 * time.Second

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// base64Reader encodes src as it is read, 12 KiB of input at a time.
type base64Reader struct {
	src []byte
	out [16 << 10]byte
	buf []byte
}

func (r *base64Reader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if len(r.src) == 0 {
			return 0, io.EOF
		}
		n := min(len(r.src), 12<<10) // a multiple of 3: no padding mid-stream
		r.buf = r.out[:base64.StdEncoding.EncodedLen(n)]
		base64.StdEncoding.Encode(r.buf, r.src[:n])
		r.src = r.src[n:]
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

const systemPrompt = `You read UK parking and traffic penalty notices (council Penalty Charge Notices,
Notices to Owner, charge certificates, private parking charge notices). Record exactly what is
printed. Never guess: use null for anything not shown, and confidence 0 for null fields.
Amounts are integers in pence. Times are UK local time with their offset. Registration marks are
upper case without spaces. If the document is not such a notice, set is_penalty_notice to false.`
