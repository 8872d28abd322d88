package snapstore_test

import (
	"strings"
	"testing"

	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// FuzzValidID checks that no accepted ID can name anything but a file in
// the store's directory.
func FuzzValidID(f *testing.F) {
	for _, seed := range []string{"ABC234", "..", "../x", "a/b", `a\b`, "a.trace", "", "%2e", "x\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !snapstore.ValidID(id) {
			return
		}
		if strings.ContainsAny(id, `./\:%`+"\x00") || id == "" || len(id) > 64 {
			t.Fatalf("ValidID accepted %q", id)
		}
	})
}
