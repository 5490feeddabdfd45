// Package claude reads Penalty Charge Notices with Anthropic's Claude: the
// document goes in as a PDF document block or an image block, and a forced
// strict tool call brings the fields back in a fixed JSON schema.
package claude

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
	c     anthropic.Client
	model string
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
		option.WithMaxRetries(cfg.MaxRetries),
		option.WithRequestTimeout(cfg.Timeout),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	return &Client{c: anthropic.NewClient(opts...), model: cfg.Model}, nil
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

// Extract reads one notice. mediaType is application/pdf or an image type.
// The raw tool input is returned too, to be kept with the violation.
func (c *Client) Extract(ctx context.Context, doc []byte, mediaType string) (Extraction, json.RawMessage, error) {
	data := base64.StdEncoding.EncodeToString(doc)
	var block anthropic.ContentBlockParamUnion
	if mediaType == "application/pdf" {
		block = anthropic.NewDocumentBlock(anthropic.Base64PDFSourceParam{Data: data})
	} else {
		block = anthropic.NewImageBlockBase64(mediaType, data)
	}
	msg, err := c.c.Messages.New(ctx, anthropic.MessageNewParams{
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
	})
	if err != nil {
		return Extraction{}, nil, classify(err)
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
// transient; any other status is a permanent rejection.
func classify(err error) error {
	var ae *anthropic.Error
	if errors.As(err, &ae) {
		switch s := ae.StatusCode; {
		case s == http.StatusRequestTimeout, s == http.StatusConflict, s == http.StatusTooManyRequests, s >= 500:
			return fmt.Errorf("%w: status %d %s: %v", ErrTransient, s, ae.Type(), ae.Message)
		default:
			return fmt.Errorf("%w: status %d %s: %v", ErrRejected, s, ae.Type(), ae.Message)
		}
	}
	return fmt.Errorf("%w: %v", ErrTransient, err)
}

const systemPrompt = `You read UK parking and traffic penalty notices (council Penalty Charge Notices,
Notices to Owner, charge certificates, private parking charge notices). Record exactly what is
printed. Never guess: use null for anything not shown, and confidence 0 for null fields.
Amounts are integers in pence. Times are UK local time with their offset. Registration marks are
upper case without spaces. If the document is not such a notice, set is_penalty_notice to false.`
