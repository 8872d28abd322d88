package rpccode

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseAndName(t *testing.T) {
	for c := int64(0); ; c++ {
		name, ok := Name(c)
		if !ok {
			assert.Equal(t, int64(17), c, "the 17 codes gRPC defines")
			break
		}
		assert.NotEmpty(t, name)
	}
	for in, want := range map[string]uint32{"OK": 0, "CANCELLED": 1, "UNAVAILABLE": 14, "UNAUTHENTICATED": 16} {
		got, ok := Parse(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
		name, _ := Name(int64(got))
		assert.NotEmpty(t, name)
	}
	for _, in := range []string{"", "Unavailable", "-32603", "14"} {
		_, ok := Parse(in)
		assert.False(t, ok, "%q is no canonical name", in)
	}
	var sink uint32
	assert.Zero(t, testing.AllocsPerRun(100, func() { sink, _ = Parse("UNAVAILABLE") }))
	assert.Equal(t, uint32(14), sink)
}
