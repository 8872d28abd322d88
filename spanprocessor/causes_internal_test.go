package spanprocessor

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel/attribute"
)

// TestCauseCardinality pins issue 17's bound on the otelfr.causes metric:
// past maxCauses distinct causes, the rest count under otherCause.
func TestCauseCardinality(t *testing.T) {
	var c causeCounts
	for i := range maxCauses + 10 {
		c.count(fmt.Sprintf("cause %d", i))
	}
	c.count("cause 0")
	c.count("")
	got := c.snapshot()
	assert.Len(t, got, maxCauses+1)
	assert.Equal(t, int64(2), got["cause 0"])
	assert.Equal(t, int64(10), got[otherCause])
	assert.Equal(t, int64(1), got["cause 10"])
}

func TestCauseOf(t *testing.T) {
	assert.Equal(t, "x", causeOf([]attribute.KeyValue{attribute.Int("n", 1), causeKey.String("x")}))
	assert.Empty(t, causeOf([]attribute.KeyValue{causeKey.Int(3)}))
}
