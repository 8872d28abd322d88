package analysis

// defaultTopEpisodes is how many episodes a Diagnosis keeps by default: as
// many as otelfr puts on an attachment span as events.
const defaultTopEpisodes = 5

type config struct {
	topEpisodes int
	// noEarlier stops Analyze from parsing one more generation back.
	noEarlier bool
}

func newConfig(opts []Option) config {
	c := config{topEpisodes: defaultTopEpisodes}
	for _, o := range opts {
		c = o.apply(c)
	}
	return c
}

// Option configures Analyze.
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

// WithTopEpisodes sets how many blocking episodes a Diagnosis keeps (and
// Diagnosis.Events turns into span events), longest first. The default is
// 5; 0 keeps none; a negative n keeps the default.
func WithTopEpisodes(n int) Option {
	return optionFunc(func(c config) config {
		if n >= 0 {
			c.topEpisodes = n
		}
		return c
	})
}
