package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// repoRoot is where docker-compose.yml lives, seen from this package.
const repoRoot = "../.."

// TestComposeFile validates docker-compose.yml the way `docker compose`
// loads it, since no Docker engine runs here, and checks that its pieces
// fit together: Jaeger's mounted configuration, the UI's link to the
// snapshot handler, the ports and the demo's build.
func TestComposeFile(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithResolvedPaths(true),
	)
	require.NoError(t, err)
	project, err := opts.LoadProject(t.Context())
	require.NoError(t, err, "docker-compose.yml loads and validates")

	require.ElementsMatch(t, []string{"jaeger", "demo"}, project.ServiceNames())
	jaeger, demo := project.Services["jaeger"], project.Services["demo"]

	t.Run("jaeger", func(t *testing.T) {
		image, tag, _ := strings.Cut(jaeger.Image, ":")
		assert.Equal(t, "jaegertracing/jaeger", image, "the official Jaeger v2 image")
		assert.True(t, strings.HasPrefix(tag, "2."), "a Jaeger v2 release, not %q", tag)
		assertPublished(t, jaeger, 16686, 4317)

		mounts := binds(t, jaeger)
		configPath := strings.TrimPrefix(findArg(jaeger.Command, "--config="), "--config=")
		require.Contains(t, mounts, configPath, "the --config file is mounted")
		cfg := readJaegerConfig(t, mounts[configPath])
		uiPath := cfg.Extensions.JaegerQuery.UI.ConfigFile
		require.Contains(t, mounts, uiPath, "the UI config that Jaeger reads is mounted")
		assert.Equal(t, filepath.Join(root, "deploy", "jaeger", "ui.json"), mounts[uiPath])

		assert.True(t, strings.HasSuffix(cfg.Receivers.OTLP.Protocols.GRPC.Endpoint, ":4317"), "OTLP/gRPC on 4317")
		assert.True(t, strings.HasSuffix(cfg.Extensions.JaegerQuery.HTTP.Endpoint, ":16686"), "the UI on 16686")
	})

	t.Run("demo", func(t *testing.T) {
		require.NotNil(t, demo.Build)
		assert.Equal(t, root, demo.Build.Context, "built from the repository root")
		assert.FileExists(t, filepath.Join(demo.Build.Context, demo.Build.Dockerfile))
		assertPublished(t, demo, 8080, 8081)
		for _, flag := range []string{"-addr=0.0.0.0:8080", "-snapshot-addr=0.0.0.0:8081"} {
			assert.Contains(t, []string(demo.Command), flag, "listens where the ports are published")
		}
		assert.Equal(t, "http://jaeger:4317", env(demo, "OTEL_EXPORTER_OTLP_ENDPOINT"), "exports to the jaeger service")
		assert.Contains(t, demo.DependsOn, "jaeger")
	})

	t.Run("link", func(t *testing.T) {
		// The UI's link, filled in for a span of the demo, is the URL the
		// demo puts on the span: the one its snapshot handler serves.
		pattern := snapshotLinkPattern(t, filepath.Join(root, "deploy", "jaeger", "ui.json"))
		assert.Equal(t, string(otelfr.SnapshotIDKey), pattern.Key, "the link hangs on the attribute the code emits")
		// The UI fills #{trace.traceID} from the trace and the rest from the
		// span's attributes: the span's own ID leads to its own page.
		const id, spanID, traceID = "Q4ZK3JX2N5ABCDEFGHIJKLMNOP", "00f067aa0ba902b7", "4bf92f3577b34da6a3ce929d0e0e4736"
		assert.Equal(t, env(demo, "OTELFR_SNAPSHOT_BASE_URL")+id+"?span="+spanID+"&trace="+traceID,
			pattern.expand(map[string]string{pattern.Key: id, string(otelfr.SnapshotSpanIDKey): spanID, "trace.traceID": traceID}))
	})
}

// linkPattern is one of the Jaeger UI's linkPatterns.
type linkPattern struct {
	Type string `json:"type"`
	Key  string `json:"key"`
	URL  string `json:"url"`
	Text string `json:"text"`
}

// expand fills in the URL template as the Jaeger UI does: #{key} becomes
// the tag's value, URL-encoded.
func (p linkPattern) expand(tags map[string]string) string {
	u := p.URL
	for k, v := range tags {
		u = strings.ReplaceAll(u, "#{"+k+"}", encodeURIComponent(v))
	}
	return u
}

// encodeURIComponent escapes like JavaScript's function of that name.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// snapshotLinkPattern reads the UI config and returns its only link
// pattern, after checking its shape.
func snapshotLinkPattern(t *testing.T, path string) linkPattern {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg struct {
		LinkPatterns []linkPattern `json:"linkPatterns"`
	}
	require.NoError(t, json.Unmarshal(data, &cfg))
	require.Len(t, cfg.LinkPatterns, 1)
	p := cfg.LinkPatterns[0]
	assert.Equal(t, "tags", p.Type, "a link on span tags (attributes)")
	assert.Contains(t, p.URL, "#{"+p.Key+"}", "the template uses the attribute")
	assert.NotEmpty(t, p.Text)
	return p
}

// jaegerConfig is the part of Jaeger's configuration the demo relies on.
type jaegerConfig struct {
	Extensions struct {
		JaegerQuery struct {
			UI struct {
				ConfigFile string `yaml:"config_file"`
			} `yaml:"ui"`
			HTTP struct {
				Endpoint string `yaml:"endpoint"`
			} `yaml:"http"`
		} `yaml:"jaeger_query"`
	} `yaml:"extensions"`
	Receivers struct {
		OTLP struct {
			Protocols struct {
				GRPC struct {
					Endpoint string `yaml:"endpoint"`
				} `yaml:"grpc"`
			} `yaml:"protocols"`
		} `yaml:"otlp"`
	} `yaml:"receivers"`
}

func readJaegerConfig(t *testing.T, path string) jaegerConfig {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg jaegerConfig
	require.NoError(t, yaml.Unmarshal(data, &cfg))
	return cfg
}

// binds maps each bind mount's target in the container to its source,
// which must exist in the repository.
func binds(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		assert.FileExists(t, v.Source)
		assert.True(t, v.ReadOnly, "%s is mounted read-only", v.Target)
		m[v.Target] = v.Source
	}
	return m
}

// assertPublished checks that each container port is published on the
// same port of the host's loopback only.
func assertPublished(t *testing.T, s types.ServiceConfig, ports ...uint32) {
	t.Helper()
	for _, port := range ports {
		i := slices.IndexFunc(s.Ports, func(p types.ServicePortConfig) bool { return p.Target == port })
		if !assert.GreaterOrEqual(t, i, 0, "%s publishes %d", s.Name, port) {
			continue
		}
		p := s.Ports[i]
		assert.Equal(t, "127.0.0.1", p.HostIP, "%s:%d is published on loopback only", s.Name, port)
		assert.Equal(t, port, parsePort(t, p.Published))
	}
}

func parsePort(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 16)
	require.NoError(t, err, "published port %q", s)
	return uint32(n)
}

func findArg(args []string, prefix string) string {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return a
		}
	}
	return ""
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}
