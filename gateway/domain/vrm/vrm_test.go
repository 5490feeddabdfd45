package vrm

import "testing"

func TestNormaliseAndValid(t *testing.T) {
	tests := []struct {
		in, norm string
		valid    bool
	}{
		{"AB12 CDE", "AB12CDE", true}, {"ab12cde", "AB12CDE", true}, {"L2WPS", "L2WPS", true},
		{"ABC 123D", "ABC123D", true}, {"AAZ 1234", "AAZ1234", true}, {"K50 WTB", "K50WTB", true},
		{"1 A", "1A", true}, {"AB12CDEF", "AB12CDEF", false}, {"", "", false}, {"ABCD1", "ABCD1", false},
		{"12345A", "12345A", false}, {"ab-12.cde", "AB12CDE", true},
	}
	for _, tc := range tests {
		n := Normalise(tc.in)
		if n != tc.norm || Valid(n) != tc.valid {
			t.Errorf("%q: normalised %q valid %v, want %q %v", tc.in, n, Valid(n), tc.norm, tc.valid)
		}
	}
}
