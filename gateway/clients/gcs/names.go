package gcs

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

const maxFilenameBytes = 120

// SafeFilename reduces whatever a user typed to a name that is safe as the
// last segment of an object path: NFKC first (so full-width and other
// look-alike slashes and dots become the ASCII ones and are then replaced),
// then only [A-Za-z0-9._-], no leading dots (no "..", no hidden names), at
// most 120 bytes with the extension kept, never empty.
func SafeFilename(name string) string {
	name = norm.NFKC.String(name)
	var b strings.Builder
	lastUnderscore := false
	for _, r := range name {
		ok := r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
		if !ok {
			r = '_'
		}
		if r == '_' {
			if lastUnderscore {
				continue
			}
			lastUnderscore = true
		} else {
			lastUnderscore = false
		}
		b.WriteRune(r)
	}
	s := strings.TrimLeft(b.String(), "._-")
	s = strings.TrimRight(s, "._")
	for strings.Contains(s, "..") {
		s = strings.ReplaceAll(s, "..", ".")
	}
	if len(s) > maxFilenameBytes {
		ext := ""
		if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= 10 {
			ext = s[i:]
		}
		s = strings.TrimRight(s[:maxFilenameBytes-len(ext)], "._") + ext
	}
	if s == "" || strings.Trim(s, ".") == "" {
		return "file"
	}
	return s
}

// ObjectPath is where a document lives in the bucket:
// {tenant}/{entity_type}/{entity_id}/{doc_type}/{doc_id}_{safe filename}.
// The first five parts are validated identifiers (UUIDs and fixed names);
// only the filename comes from the user, and it is made safe here.
func ObjectPath(tenant, entityType, entityID, docType, docID, filename string) string {
	return tenant + "/" + entityType + "/" + entityID + "/" + docType + "/" + docID + "_" + SafeFilename(filename)
}

// ContentDisposition is an attachment header that carries filename safely:
// an ASCII fallback in filename= and the exact name (control characters and
// path separators removed) in RFC 5987 filename*=.
func ContentDisposition(filename string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f || r == '/' || r == '\\':
			return -1
		case r == utf8.RuneError:
			return -1
		}
		return r
	}, filename)
	if clean == "" {
		clean = "file"
	}
	var ascii strings.Builder
	for _, r := range clean {
		if r >= 0x20 && r < 0x7f && r != '"' && r != ';' {
			ascii.WriteRune(r)
		} else {
			ascii.WriteByte('_')
		}
	}
	var enc strings.Builder
	for _, c := range []byte(clean) {
		if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0) {
			enc.WriteByte(c)
		} else {
			enc.WriteString("%" + strings.ToUpper(hex2(c)))
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + enc.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}
