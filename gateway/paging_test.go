package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPageCut: the row that makes the cursor is found by structure alone,
// whatever its strings hold, and the page cut after it is the same JSON as
// decoding the rows and keeping the first limit.
func TestPageCut(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		limit int
		more  bool
		row   string // the limit-th row when more
		bad   bool
	}{
		{"empty", `[]`, 2, false, "", false},
		{"fewer rows", `[{"id":1},{"id":2}]`, 3, false, "", false},
		{"exactly limit", `[{"id":1},{"id":2}]`, 2, false, "", false},
		{"one more", `[{"id":1},{"id":2},{"id":3}]`, 2, true, `{"id":2}`, false},
		{"limit 1", `[{"id":1},{"id":2}]`, 1, true, `{"id":1}`, false},
		{"PostgREST spacing", "[{\"id\":1}, \n {\"id\":2}, \n {\"id\":3}]\n", 2, true, `{"id":2}`, false},
		{"brackets, commas and quotes in strings", `[{"n":"a],[\"}{,"},{"n":"\\","m":[1,[2]]},{"n":"x"}]`, 2, true, `{"n":"\\","m":[1,[2]]}`, false},
		{"nested arrays and objects", `[{"a":{"b":[{"c":[]}]}},{"d":[[],[{}]]},{}]`, 2, true, `{"d":[[],[{}]]}`, false},
		{"scalars", `["a,b", 2, null]`, 2, true, `2`, false},
		{"not an array", `{"id":1}`, 2, false, "", true},
		{"trailing comma", `[{"id":1},]`, 2, false, "", true},
		{"empty row", `[,{"id":1}]`, 2, false, "", true},
		{"cut short", `[{"id":1},{"id":2`, 5, false, "", true},
		{"stray brace", `[{"id":1}}]`, 5, false, "", true},
		{"garbage after", `[{"id":1}] x`, 5, false, "", true},
		{"nothing", ``, 5, false, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			more, start, end, err := pageCut([]byte(tc.body), tc.limit)
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want error: %v", err, tc.bad)
			}
			if tc.bad {
				return
			}
			if more != tc.more {
				t.Fatalf("more = %v, want %v", more, tc.more)
			}
			if !more {
				return
			}
			if got := tc.body[start:end]; got != tc.row {
				t.Errorf("row %d = %q, want %q", tc.limit, got, tc.row)
			}
			// The cut page decodes to the first limit rows of the whole.
			var all, page []json.RawMessage
			if err := json.Unmarshal([]byte(tc.body), &all); err != nil {
				t.Fatal(err)
			}
			cut := tc.body[:end] + "]"
			if err := json.Unmarshal([]byte(cut), &page); err != nil {
				t.Fatalf("cut page %q: %v", cut, err)
			}
			if len(page) != tc.limit || strings.Join(raw(page), "|") != strings.Join(raw(all[:tc.limit]), "|") {
				t.Errorf("cut page %q, want the first %d rows of %q", cut, tc.limit, tc.body)
			}
		})
	}
}

func raw(rows []json.RawMessage) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = string(r)
	}
	return out
}

// FuzzPageCut: on every valid JSON array, pageCut agrees with decoding it.
func FuzzPageCut(f *testing.F) {
	for _, s := range []string{`[]`, `[{"id":1},{"id":2},{"id":3}]`, `[{"n":"a],[\"}{,"},{"m":[1,[2]]},3]`, "[ 1 ,\n 2 ]"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, body string, limit int) {
		if limit < 1 || limit > 50 || !strings.HasPrefix(strings.TrimLeft(body, " \t\r\n"), "[") {
			return
		}
		var all []json.RawMessage
		if json.Unmarshal([]byte(body), &all) != nil {
			return // only valid arrays are compared
		}
		more, start, end, err := pageCut([]byte(body), limit)
		if err != nil {
			t.Fatalf("valid array refused: %v", err)
		}
		if more != (len(all) > limit) {
			t.Fatalf("more = %v with %d rows and limit %d", more, len(all), limit)
		}
		if !more {
			return
		}
		if got := body[start:end]; got != string(all[limit-1]) {
			t.Fatalf("row %d = %q, decoding gives %q", limit, got, all[limit-1])
		}
		var page []json.RawMessage
		if err := json.Unmarshal([]byte(body[:end]+"]"), &page); err != nil || len(page) != limit {
			t.Fatalf("cut page %q: %v, %d rows", body[:end]+"]", err, len(page))
		}
	})
}
