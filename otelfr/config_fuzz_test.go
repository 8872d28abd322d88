package otelfr

import (
	"testing"
)

// FuzzConfigFromEnv feeds arbitrary values to every environment variable:
// parsing never panics, and a value is either taken or reported and the
// default kept, never out of range.
func FuzzConfigFromEnv(f *testing.F) {
	for _, seed := range []string{"10s", "0", "-1s", "16MiB", "1 GiB", "9223372036854775807", "1e9", "", " 5m ", "0x10", "∞"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		def := newConfig(nil)
		lookup := func(string) (string, bool) { return v, true }
		c := def.fromEnv(lookup)
		handled.Take()
		if c.minAge <= 0 || c.maxBytes == 0 || c.minInterval < 0 || c.byteBudget < 0 || c.budgetPeriod <= 0 {
			t.Fatalf("%q gave an out-of-range config %+v", v, c)
		}
	})
}
