// Package vrm normalises and checks UK vehicle registration marks.
package vrm

import (
	"regexp"
	"strings"
)

// Normalise upper-cases s and keeps only A-Z and 0-9, as the DVLA expects.
func Normalise(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

var pattern = regexp.MustCompile(`^(?:[A-Z]{2}[0-9]{2}[A-Z]{3}` + // current (2001+): AB12CDE
	`|[A-Z][0-9]{1,3}[A-Z]{3}` + // prefix (1983-2001): K50WTB
	`|[A-Z]{3}[0-9]{1,3}[A-Z]` + // suffix (1963-1983): ABC123D
	`|[A-Z]{1,3}[0-9]{1,4}` + // dateless and Northern Ireland: AAZ1234
	`|[0-9]{1,4}[A-Z]{1,3})$`) // reversed dateless: 1234ZZ

// Valid reports whether a normalised mark has a GB or NI format. It is a
// sanity check before calling the DVLA, which remains the authority.
func Valid(normalised string) bool {
	return len(normalised) >= 2 && len(normalised) <= 8 && pattern.MatchString(normalised)
}
