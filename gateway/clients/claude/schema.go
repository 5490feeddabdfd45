package claude

import (
	"bytes"
	"io"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

// keyFields carry a confidence; every other field is informational.
var keyFields = []string{
	"notice_type", "issuing_authority", "pcn_number", "vehicle_registration", "contravention_code",
	"contravention_datetime", "location", "penalty_amount_pence", "discounted_amount_pence",
	"discount_deadline", "payment_due_date",
}

func nullable(t string, extra map[string]any) map[string]any {
	m := map[string]any{"type": []string{t, "null"}}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// inputSchema is the strict tool schema: every field required (nullable
// where the notice may not show it), no additional properties.
func inputSchema() anthropic.ToolInputSchemaParam {
	conf := map[string]any{}
	for _, f := range keyFields {
		conf[f] = map[string]any{"type": "number"}
	}
	props := map[string]any{
		"is_penalty_notice": map[string]any{"type": "boolean", "description": "false if this is not a parking/traffic penalty or parking charge notice"},
		"notice_type": map[string]any{"type": "string", "enum": []string{"council_pcn_on_vehicle", "council_pcn_by_post", "notice_to_owner",
			"charge_certificate", "private_notice_to_driver", "private_notice_to_keeper", "private_notice_to_hirer", "other", "unknown"}},
		"issuer_type": map[string]any{"type": "string", "enum": []string{"local_authority", "transport_for_london", "private_parking_operator",
			"road_user_charging", "police", "other", "unknown"}},
		"issuing_authority":         nullable("string", map[string]any{"description": "Council or company name as printed"}),
		"pcn_number":                nullable("string", map[string]any{"description": "Reference exactly as printed, without spaces"}),
		"vehicle_registration":      nullable("string", map[string]any{"description": "Registration mark, upper case, no spaces"}),
		"vehicle_make":              nullable("string", nil),
		"vehicle_colour":            nullable("string", nil),
		"contravention_code":        nullable("string", map[string]any{"description": "e.g. 01, 12, 34J (keep any suffix)"}),
		"contravention_description": nullable("string", nil),
		"contravention_datetime":    nullable("string", map[string]any{"format": "date-time", "description": "UK local time with offset"}),
		"location":                  nullable("string", nil),
		"date_of_notice":            nullable("string", map[string]any{"format": "date"}),
		"penalty_amount_pence":      nullable("integer", nil),
		"discounted_amount_pence":   nullable("integer", nil),
		"discount_deadline":         nullable("string", map[string]any{"format": "date", "description": "only if printed; do not compute"}),
		"payment_due_date":          nullable("string", map[string]any{"format": "date", "description": "only if printed; do not compute"}),
		"field_confidence": map[string]any{"type": "object", "additionalProperties": false, "required": keyFields, "properties": conf,
			"description": "0.0-1.0 per field; 0 when the field is null"},
		"warnings": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
	}
	required := []string{"is_penalty_notice", "notice_type", "issuer_type", "issuing_authority", "pcn_number",
		"vehicle_registration", "vehicle_make", "vehicle_colour", "contravention_code", "contravention_description",
		"contravention_datetime", "location", "date_of_notice", "penalty_amount_pence", "discounted_amount_pence",
		"discount_deadline", "payment_due_date", "field_confidence", "warnings"}
	return anthropic.ToolInputSchemaParam{Properties: props, Required: required,
		ExtraFields: map[string]any{"additionalProperties": false}}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
