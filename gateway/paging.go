package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/supabase"
)

// Every list is newest first, ties broken by id, and pages two ways:
//   - by cursor: the next page starts strictly after the last row of this one
//     (keyset), so it costs one index range scan at any depth and rows
//     inserted meanwhile neither repeat nor hide rows of the walk;
//   - by offset, for older callers, up to maxOffset (skipped rows still cost).
//
// A cursor is opaque to clients but holds only typed values: a version, the
// last row's created_at (microseconds) and id, and a check binding it to the
// list, its filters and the tenant. Decoding yields a time and a UUID, never
// text that reaches the upstream query, so a cursor cannot add a filter; and
// the tenant filter always comes from the token.
const (
	defaultLimit = 50
	maxLimit     = 200
	// maxOffset bounds offset paging: deeper pages would walk every skipped row.
	maxOffset = 1000

	headerNextCursor = "X-Next-Cursor"
	headerTotal      = "X-Total-Count"
	headerTotalExact = "X-Total-Count-Exact"
	headerLink       = "Link"

	cursorVersion = 1
	cursorLen     = 1 + 8 + 16 + 8 // version, created_at, id, check
)

// listSpec is one list request: which list, and the filters applied to it
// (the same in the next page's link and bound into its cursor).
type listSpec struct {
	name    string
	filters url.Values
}

// cursorKey is the position of a row in a list's order.
type cursorKey struct {
	createdAt time.Time
	id        uuid.UUID
}

// pageRequest is a validated limit with either an offset or a cursor.
type pageRequest struct {
	limit, offset int
	after         *cursorKey
}

// parsePage validates limit, offset and cursor; the cursor must have been
// issued for this list, these filters and this tenant.
func parsePage(v *ValidationError, spec listSpec, tenant supabase.TenantID, limitP, offsetP *int, cursorP *string) pageRequest {
	pr := pageRequest{limit: defaultLimit}
	if limitP != nil {
		pr.limit = *limitP
		if pr.limit < 1 {
			v.add([]string{"query", "limit"}, "Input should be greater than or equal to 1", "greater_than_equal")
		} else if pr.limit > maxLimit {
			v.add([]string{"query", "limit"}, "Input should be less than or equal to "+strconv.Itoa(maxLimit), "less_than_equal")
		}
	}
	if offsetP != nil {
		pr.offset = *offsetP
		if pr.offset < 0 {
			v.add([]string{"query", "offset"}, "Input should be greater than or equal to 0", "greater_than_equal")
		} else if pr.offset > maxOffset {
			v.add([]string{"query", "offset"}, "Input should be less than or equal to "+strconv.Itoa(maxOffset)+
				"; to page deeper, follow the cursor in X-Next-Cursor (or the Link rel=\"next\" header)", "less_than_equal")
		}
	}
	if cursorP != nil {
		if offsetP != nil && *offsetP != 0 {
			v.add([]string{"query", "cursor"}, "Use either cursor or offset, not both", "value_error")
			return pr
		}
		k, msg := decodeCursor(*cursorP, spec, tenant)
		if msg != "" {
			v.add([]string{"query", "cursor"}, msg, "value_error")
			return pr
		}
		pr.after = &k
	}
	return pr
}

// apply orders q as every list is ordered and asks for one row more than the
// page, so that a next cursor is only given when there is a next page. The
// total is counted on first and offset pages only (a keyset page would count
// the rows after the cursor), and estimated beyond PostgREST's max-rows.
func (pr pageRequest) apply(q *supabase.Query) *supabase.Query {
	q.Order("created_at", true).Order("id", true).Limit(pr.limit + 1)
	if pr.after != nil {
		return q.After(pr.after.createdAt.UTC().Format(cursorTime), pr.after.id.String())
	}
	return q.Offset(pr.offset).WithEstimatedCount()
}

// cursorTime is how a cursor's timestamp is sent upstream: UTC, so it has no
// '+', with PostgreSQL's microsecond precision so equality holds.
const cursorTime = "2006-01-02T15:04:05.000000Z07:00"

// writeList answers a page read with pr.apply: at most pr.limit rows, the
// totals, and the next cursor when more rows follow.
func writeList(c *echo.Context, spec listSpec, pr pageRequest, p supabase.Page, detail string) error {
	h := c.Response().Header()
	if p.Total >= 0 {
		h.Set(headerTotal, strconv.Itoa(p.Total))
		h.Set(headerTotalExact, strconv.FormatBool(p.Exact))
	}
	body := p.Body
	more, ls, le, err := pageCut(body, pr.limit)
	if err != nil {
		return upstream(detail, err)
	}
	if more {
		var last struct {
			ID        uuid.UUID `json:"id"`
			CreatedAt time.Time `json:"created_at"`
		}
		if err := json.Unmarshal(body[ls:le], &last); err != nil {
			return upstream(detail, err)
		}
		tenant := tenantFrom(c.Request().Context())
		cur := encodeCursor(cursorKey{createdAt: last.CreatedAt, id: last.ID}, spec, tenant)
		h.Set(headerNextCursor, cur)
		h.Set(headerLink, "<"+nextLink(c.Request().URL.Path, spec, pr.limit, cur)+`>; rel="next"`)
		// The page is the body up to its last row, closed: the extra row
		// and the separator before it are dropped, the rest is PostgREST's
		// bytes as they came (the buffer is this request's own).
		body = append(body[:le], ']')
	}
	return c.JSONBlob(http.StatusOK, body)
}

var errNotArray = errors.New("paging: upstream answer is not a JSON array")

// pageCut finds, in PostgREST's JSON array b, the byte range [start, end) of
// row number limit (counting from 1) and whether another row follows it,
// in one pass that tracks only strings and nesting. Decoding the whole array
// into rows to count them and re-joining them cost a quarter of the list
// path's CPU; the rows are passed on as they are, so only the one row that
// makes the cursor is decoded. It checks the array's structure (brackets,
// quotes, commas between rows), not each value: the bytes are PostgREST's.
func pageCut(b []byte, limit int) (more bool, start, end int, err error) {
	i := skipJSONSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false, 0, 0, errNotArray
	}
	rows := 0                // rows seen, counting the one being read
	depth := 0               // nesting inside the current row
	inStr := false           // inside a string
	rowStart, last := -1, -1 // current row's first and last byte
	for i++; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
				last = i
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case ',', ']', '}':
			if depth > 0 {
				if c != ',' {
					depth--
				}
				last = i
				continue
			}
			if c == '}' || rowStart < 0 && (c == ',' || rows > 0) {
				return false, 0, 0, errNotArray // a stray '}', an empty row or a trailing comma
			}
			if rows == limit && rowStart >= 0 {
				start, end = rowStart, last+1
			}
			rowStart = -1
			if c == ']' {
				if skipJSONSpace(b, i+1) != len(b) {
					return false, 0, 0, errNotArray
				}
				return false, start, end, nil
			}
			continue
		case '"':
			inStr = true
		case '{', '[':
			depth++
		}
		if rowStart < 0 {
			rows++
			if rows > limit {
				return true, start, end, nil
			}
			rowStart = i
		}
		last = i
	}
	return false, 0, 0, errNotArray // cut short
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// nextLink is the next page's path and query: the same filters and limit,
// and the cursor instead of any offset.
func nextLink(path string, spec listSpec, limit int, cursor string) string {
	q := url.Values{}
	for k, vs := range spec.filters {
		q[k] = vs
	}
	q.Set("limit", strconv.Itoa(limit))
	q.Set("cursor", cursor)
	return path + "?" + q.Encode()
}

func encodeCursor(k cursorKey, spec listSpec, tenant supabase.TenantID) string {
	b := make([]byte, cursorLen)
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(k.createdAt.UnixMicro()))
	copy(b[9:25], k.id[:])
	sum := cursorCheck(b[:25], spec, tenant)
	copy(b[25:], sum[:8])
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the key, or the message a client sees when the cursor
// is malformed, edited, or from another list, filter set or tenant.
func decodeCursor(s string, spec listSpec, tenant supabase.TenantID) (cursorKey, string) {
	const restart = "; start again from the first page without a cursor"
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion {
		return cursorKey{}, "Invalid cursor: pass X-Next-Cursor of the previous page as it was given" + restart
	}
	sum := cursorCheck(b[:25], spec, tenant)
	if subtle.ConstantTimeCompare(sum[:8], b[25:]) != 1 {
		return cursorKey{}, "Cursor does not belong to this list with these filters" + restart
	}
	us := int64(binary.BigEndian.Uint64(b[1:9]))
	ts := time.UnixMicro(us).UTC()
	if ts.Year() < 1 || ts.Year() > 9999 {
		return cursorKey{}, "Invalid cursor: pass X-Next-Cursor of the previous page as it was given" + restart
	}
	var id uuid.UUID
	copy(id[:], b[9:25])
	return cursorKey{createdAt: ts, id: id}, ""
}

// cursorCheck binds a cursor to its list, filters and tenant. It is a check,
// not a secret MAC: a client forging one for its own tenant and list gains
// nothing a created_at filter would not give, and the tenant filter never
// comes from the cursor.
func cursorCheck(key []byte, spec listSpec, tenant supabase.TenantID) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte("fleetpilot list cursor\x00" + spec.name + "\x00" + tenant.String() + "\x00" + spec.filters.Encode() + "\x00"))
	h.Write(key)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
