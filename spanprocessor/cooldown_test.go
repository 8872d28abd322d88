package spanprocessor

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The per-trigger cooldown map was scanned in full on every snapshot once
// it held 1,024 keys, and grew without bound while they were all cooling.
func TestCooldownMapIsUnbounded(t *testing.T) {
	var c cooldowns
	const d = time.Hour
	now := time.Unix(0, 0)
	for i := range 100_000 {
		now = now.Add(time.Millisecond)
		key := fmt.Sprint("latency\x00GET /users/", i)
		assert.False(t, c.cooling(d, key, now))
		c.fired(d, key, now)
	}
	assert.Equal(t, maxCooldownKeys, c.len(), "bounded, though every key is still cooling")
	assert.True(t, c.cooling(d, "latency\x00GET /users/99999", now), "the latest keys are kept")
	assert.False(t, c.cooling(d, "latency\x00GET /users/0", now), "the oldest are forgotten")

	c.fired(d, "latency\x00GET /users/99000", now) // fires again: moves to the back
	now = now.Add(d - 500*time.Millisecond)
	assert.True(t, c.cooling(d, "latency\x00GET /users/99000", now))
	assert.Equal(t, 1+500, c.len(), "keys whose cooldown is over are forgotten")
	c.fired(d, "latency\x00GET /users/99000", now)
	now = now.Add(time.Second)
	assert.True(t, c.cooling(d, "latency\x00GET /users/99000", now), "refired less than d ago")
	assert.Equal(t, 1, c.len())
	assert.False(t, c.cooling(0, "latency\x00GET /users/99000", now), "d = 0: no cooldown")
}

func BenchmarkCooldownFired(b *testing.B) {
	var c cooldowns
	now := time.Unix(0, 0)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprint("latency\x00GET /users/", i)
	}
	i := 0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		c.cooling(time.Hour, keys[i%len(keys)], now)
		c.fired(time.Hour, keys[i%len(keys)], now)
		i++
	}
}
