package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// TestREADMEServeTable checks the README's table of otelfr serve's flags
// against the command: every flag it defines has a row, every row a flag,
// with the environment variable and the default the command uses.
func TestREADMEServeTable(t *testing.T) {
	var help bytes.Buffer
	require.Equal(t, exitOK, serve(t.Context(), []string{"-h"}, &help))
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help.String(), -1) {
		flags[m[1]] = true
	}
	require.NotEmpty(t, flags)

	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Running a fleet\n")
	require.True(t, ok, "README has a Running a fleet section")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		if m := regexp.MustCompile("^\\| `-([a-z-]+)` \\|").FindStringSubmatch(line); m != nil {
			rows[m[1]] = strings.Split(line, "|")
		}
	}
	for f := range flags {
		assert.Contains(t, rows, f, "README's serve table lists -%s", f)
	}
	for f := range rows {
		assert.True(t, flags[f], "README lists -%s, which otelfr serve does not define", f)
	}
	env := map[string]string{"store": bucketstore.EnvStore, "token": envServeToken, "basic-auth": envServeBasicAuth}
	for f, name := range env {
		if assert.Contains(t, rows, f) {
			assert.Contains(t, rows[f][2], "`"+name+"`", "-%s's variable", f)
		}
	}
	if assert.Contains(t, rows, "addr") {
		assert.Contains(t, rows["addr"][3], "`"+defaultServeAddr+"`", "-addr's default")
	}
}
