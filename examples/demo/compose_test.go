package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
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

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// repoRoot is where docker-compose.yml lives, seen from this package.
const repoRoot = "../.."

// TestComposeFile validates docker-compose.yml the way `docker compose`
// loads it, since no Docker engine runs here, and checks that its pieces
// fit together as a fleet: Jaeger's mounted configuration; the S3 server
// and the one bucket URL, with the credentials it accepts, that both
// replicas write to and otelfr serve reads; replicas told apart by their
// instance, exporting to Jaeger and linking to the central viewer; the
// UI's link to it; the ports and the builds.
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

	replicas := []string{"demo-a", "demo-b"}
	require.ElementsMatch(t, append([]string{"jaeger", "s3", "serve"}, replicas...), project.ServiceNames())
	jaeger, s3, serve := project.Services["jaeger"], project.Services["s3"], project.Services["serve"]
	store := env(serve, bucketstore.EnvStore)
	viewerPort := published(t, serve, 8081)

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

	t.Run("s3", func(t *testing.T) {
		require.NotNil(t, s3.Build)
		assert.FileExists(t, filepath.Join(s3.Build.Context, cmp.Or(s3.Build.Dockerfile, "Dockerfile")))
		assertPublished(t, s3, 8333)
		// The bucket URL names this service, its S3 port and the bucket
		// it creates.
		u, err := url.Parse(store)
		require.NoError(t, err, "%s of serve", bucketstore.EnvStore)
		assert.Equal(t, "s3", u.Scheme)
		assert.Equal(t, strings.TrimPrefix(findArg(s3.Command, "-bucket="), "-bucket="), u.Host, "the bucket weed creates")
		endpoint, err := url.Parse(u.Query().Get("endpoint"))
		require.NoError(t, err)
		assert.Equal(t, "s3:8333", endpoint.Host, "the endpoint is the s3 service's S3 port")
		assert.Equal(t, "true", u.Query().Get("use_path_style"), "path-style, as SeaweedFS serves buckets")

		// The credentials every client signs with are an identity of the
		// server's that may write.
		mounts := binds(t, s3)
		configPath := strings.TrimPrefix(findArg(s3.Command, "-s3.config="), "-s3.config=")
		require.Contains(t, mounts, configPath, "the -s3.config file is mounted")
		data, err := os.ReadFile(mounts[configPath])
		require.NoError(t, err)
		var cfg struct {
			Identities []struct {
				Credentials []struct {
					AccessKey string `json:"accessKey"`
					SecretKey string `json:"secretKey"`
				} `json:"credentials"`
				Actions []string `json:"actions"`
			} `json:"identities"`
		}
		require.NoError(t, json.Unmarshal(data, &cfg))
		writer := false
		for _, id := range cfg.Identities {
			for _, c := range id.Credentials {
				writer = writer || c.AccessKey == env(serve, "AWS_ACCESS_KEY_ID") &&
					c.SecretKey == env(serve, "AWS_SECRET_ACCESS_KEY") && slices.Contains(id.Actions, "Write")
			}
		}
		assert.True(t, writer, "the clients' credentials may write to the bucket")
	})

	t.Run("replicas", func(t *testing.T) {
		instances := map[string]string{}
		hostPorts := map[uint32]string{}
		for _, name := range replicas {
			demo := project.Services[name]
			assertBuiltFromRoot(t, root, demo)
			assert.Empty(t, demo.Entrypoint, "%s runs the demo, the image's entrypoint", name)
			for _, flag := range []string{"-addr=0.0.0.0:8080", "-snapshot-addr=0.0.0.0:8081"} {
				assert.Contains(t, []string(demo.Command), flag, "%s listens where its ports are published", name)
			}
			port := published(t, demo, 8080)
			assert.NotContains(t, hostPorts, port, "%s's orders API has a host port of its own", name)
			hostPorts[port] = name

			assert.Equal(t, "http://jaeger:4317", env(demo, "OTEL_EXPORTER_OTLP_ENDPOINT"), "%s exports to the jaeger service", name)
			assert.Equal(t, store, env(demo, bucketstore.EnvStore), "%s writes to the bucket serve reads", name)
			for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
				assert.Equal(t, env(serve, k), env(demo, k), "%s signs as serve does", name)
			}
			assert.Equal(t, fmt.Sprintf("http://localhost:%d/snapshots/", viewerPort), env(demo, exporter.EnvBaseURL),
				"%s links to the central viewer's published port", name)
			instance := resourceAttr(env(demo, "OTEL_RESOURCE_ATTRIBUTES"), "service.instance.id")
			assert.NotEmpty(t, instance, "%s names its instance", name)
			assert.NotContains(t, instances, instance, "%s's instance is its own", name)
			instances[instance] = name
			assert.ElementsMatch(t, []string{"jaeger", "s3"}, slices.Collect(maps.Keys(demo.DependsOn)), "%s", name)
		}
	})

	t.Run("serve", func(t *testing.T) {
		assertBuiltFromRoot(t, root, serve)
		assert.Equal(t, []string{"/otelfr"}, []string(serve.Entrypoint), "the otelfr command, from the demo's image")
		require.NotEmpty(t, serve.Command)
		assert.Equal(t, "serve", serve.Command[0])
		assert.Contains(t, []string(serve.Command), "-addr=0.0.0.0:8081", "listens where its port is published")
		assert.NotEmpty(t, store, "reads the bucket that %s names", bucketstore.EnvStore)
		assert.Contains(t, serve.DependsOn, "s3")
		dockerfile, err := os.ReadFile(filepath.Join(serve.Build.Context, serve.Build.Dockerfile))
		require.NoError(t, err)
		assert.Contains(t, string(dockerfile), "./cmd/otelfr", "the image holds the otelfr command")
	})

	t.Run("link", func(t *testing.T) {
		// The UI's link, filled in for a span of either replica, is the URL
		// the replica puts on the span: the central viewer's.
		pattern := snapshotLinkPattern(t, filepath.Join(root, "deploy", "jaeger", "ui.json"))
		assert.Equal(t, string(otelfr.SnapshotIDKey), pattern.Key, "the link hangs on the attribute the code emits")
		// The UI fills #{trace.traceID} from the trace and the rest from the
		// span's attributes: the span's own ID leads to its own page.
		const id, spanID, traceID = "Q4ZK3JX2N5ABCDEFGHIJKLMNOP", "00f067aa0ba902b7", "4bf92f3577b34da6a3ce929d0e0e4736"
		for _, name := range replicas {
			assert.Equal(t, env(project.Services[name], exporter.EnvBaseURL)+id+"?span="+spanID+"&trace="+traceID,
				pattern.expand(map[string]string{pattern.Key: id, string(otelfr.SnapshotSpanIDKey): spanID, "trace.traceID": traceID}),
				"the link of %s's spans", name)
		}
	})
}

// assertBuiltFromRoot checks that s is built from the repository root
// with a Dockerfile that exists.
func assertBuiltFromRoot(t *testing.T, root string, s types.ServiceConfig) {
	t.Helper()
	if !assert.NotNil(t, s.Build, "%s is built", s.Name) {
		return
	}
	assert.Equal(t, root, s.Build.Context, "%s is built from the repository root", s.Name)
	assert.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))
}

// resourceAttr returns the value of key in OTEL_RESOURCE_ATTRIBUTES's
// key=value,… form, or "".
func resourceAttr(attrs, key string) string {
	for kv := range strings.SplitSeq(attrs, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
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
		assert.Equal(t, port, published(t, s, port), "%s:%d is published on the same port", s.Name, port)
	}
}

// published returns the host port that s publishes its port on, after
// checking that it is bound to the host's loopback only; 0 if s does not
// publish it.
func published(t *testing.T, s types.ServiceConfig, port uint32) uint32 {
	t.Helper()
	i := slices.IndexFunc(s.Ports, func(p types.ServicePortConfig) bool { return p.Target == port })
	if !assert.GreaterOrEqual(t, i, 0, "%s publishes %d", s.Name, port) {
		return 0
	}
	p := s.Ports[i]
	assert.Equal(t, "127.0.0.1", p.HostIP, "%s:%d is published on loopback only", s.Name, port)
	return parsePort(t, p.Published)
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
