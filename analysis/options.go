package analysis

import "strings"

// defaultTopEpisodes is how many episodes a Diagnosis keeps by default: as
// many as otelfr puts on an attachment span as events.
const defaultTopEpisodes = 5

type config struct {
	topEpisodes int
	program     program
	// noEarlier stops Analyze from parsing one more generation back.
	noEarlier bool
}

func newConfig(opts []Option) config {
	c := config{topEpisodes: defaultTopEpisodes, program: defaultProgram()}
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

// WithProgram sets which code is the program's own, the code a diagnosis
// names places in (the frame of a stack it reports is the first in the
// program, past the runtime, the standard library, third-party libraries
// and instrumentation): the packages at or below the given import paths,
// module paths or package paths, and package main.
//
// By default the program is the running binary's main module, from its
// build info (runtime/debug.ReadBuildInfo), and any other code whose source
// is outside the module cache and vendor directories, so that a snapshot
// of another program (analyzed by otelfr's command or viewer) is read
// right too. With WithProgram, only the given paths and package main are
// the program. Empty paths are ignored; no non-empty path keeps the
// default. A place falls back to a library frame only when a stack holds
// no frame of the program.
func WithProgram(paths ...string) Option {
	return optionFunc(func(c config) config {
		var p program
		for _, path := range paths {
			if path = strings.TrimSuffix(strings.TrimSpace(path), "/"); path != "" {
				p.paths = append(p.paths, path)
			}
		}
		if len(p.paths) > 0 {
			c.program = p
		}
		return c
	})
}
