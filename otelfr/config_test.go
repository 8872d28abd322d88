package otelfr

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigPrecedence(t *testing.T) {
	t.Setenv(EnvMinAge, "3s")
	t.Setenv(EnvMaxBytes, "4MiB")
	c := newConfig([]Option{WithMinAge(7 * time.Second)})
	assert.Equal(t, 7*time.Second, c.minAge, "an option beats the environment")
	assert.Equal(t, uint64(4<<20), c.maxBytes, "the environment beats the default")
	assert.Equal(t, DefaultMinInterval, c.minInterval)
}

func TestConfigFromEnv(t *testing.T) {
	def := newConfig(nil)
	tests := []struct {
		name    string
		env     map[string]string
		want    func(config) config
		wantErr bool
	}{
		{"empty", map[string]string{}, func(c config) config { return c }, false},
		{"all", map[string]string{
			EnvMinAge: "30s", EnvMaxBytes: "64 MiB", EnvMinInterval: "0",
			EnvByteBudget: "1GiB", EnvBudgetPeriod: "24h",
		}, func(c config) config {
			c.minAge, c.maxBytes, c.minInterval = 30*time.Second, 64<<20, 0
			c.byteBudget, c.budgetPeriod = 1<<30, 24*time.Hour
			return c
		}, false},
		{"plain bytes", map[string]string{EnvMaxBytes: "1048576"}, func(c config) config {
			c.maxBytes = 1 << 20
			return c
		}, false},
		{"bad duration", map[string]string{EnvMinAge: "ten seconds"}, func(c config) config { return c }, true},
		{"zero min age", map[string]string{EnvMinAge: "0s"}, func(c config) config { return c }, true},
		{"negative interval", map[string]string{EnvMinInterval: "-1s"}, func(c config) config { return c }, true},
		{"bad size", map[string]string{EnvMaxBytes: "12 parsecs"}, func(c config) config { return c }, true},
		{"negative size", map[string]string{EnvByteBudget: "-5"}, func(c config) config { return c }, true},
		{"overflowing size", map[string]string{EnvByteBudget: "9999999999999GiB"}, func(c config) config { return c }, true},
		{"zero budget disables", map[string]string{EnvByteBudget: "0"}, func(c config) config {
			c.byteBudget = 0
			return c
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Empty(t, handled.Take(), "errors before the test")
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			got := def.fromEnv(lookup)
			assert.Equal(t, tt.want(def), got)
			errs := handled.Take()
			assert.Equal(t, tt.wantErr, len(errs) > 0, "errors: %v", errors.Join(errs...))
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "12": 12, "12B": 12, "2K": 2048, "3 MiB": 3 << 20, "1GiB": 1 << 30} {
		got, err := parseSize(in)
		assert.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "MiB", "1.5MiB", "-1", "0x10", "1TiB"} {
		_, err := parseSize(in)
		assert.Error(t, err, in)
	}
}
