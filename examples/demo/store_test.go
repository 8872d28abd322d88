package main

import (
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
)

// TestNewResource checks what tells one replica from another: a
// service.instance.id, random and shared by the process's two services
// unless OTEL_RESOURCE_ATTRIBUTES names one, and the host's name; the
// service name stays the demo's whatever the environment says.
func TestNewResource(t *testing.T) {
	host, err := os.Hostname()
	require.NoError(t, err)
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, tt := range []struct {
		name, env    string
		wantInstance string // "" for a generated one
		wantHost     string
	}{
		{"generated", "", "", host},
		{"from the environment", "service.instance.id=replica-a,service.name=other", "replica-a", host},
		{"host from the environment", "host.name=node-7", "", "node-7"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", tt.env)
			t.Setenv("OTEL_SERVICE_NAME", "")
			instance := newInstanceID()
			require.Regexp(t, uuid, instance, "a version 4 UUID")
			assert.NotEqual(t, instance, newInstanceID(), "random")
			for _, service := range []string{ordersService, inventoryService} {
				res, err := newResource(t.Context(), service, instance)
				require.NoError(t, err)
				attrs := res.Set()
				got := func(k attribute.Key) string { v, _ := attrs.Value(k); return v.AsString() }
				assert.Equal(t, service, got("service.name"), "the demo's service name")
				assert.Equal(t, tt.wantHost, got("host.name"))
				want := tt.wantInstance
				if want == "" {
					want = instance
				}
				assert.Equal(t, want, got("service.instance.id"), "%s's instance", service)
			}
		})
	}
}

// TestDemoBucketStore runs the demo with -store naming a bucket and the
// replica's instance in OTEL_RESOURCE_ATTRIBUTES: its viewer serves the
// snapshots from the bucket store, each records the replica's instance
// and host, and SIGINT drains the spool into the bucket.
func TestDemoBucketStore(t *testing.T) {
	bin := buildDemo(t)
	bucket := (&url.URL{Scheme: "file", Path: t.TempDir()}).String()
	snapAddr := testutil.FreeAddr(t)
	d := startDemo(t, bin,
		[]string{"OTEL_RESOURCE_ATTRIBUTES=service.instance.id=replica-t", "XDG_CACHE_HOME=" + t.TempDir()}, // the spool's parent
		"-addr", testutil.FreeAddr(t), "-inventory-addr", testutil.FreeAddr(t), "-snapshot-addr", snapAddr,
		"-store", bucket, "-rate", "20", "-duration", "30s", "-incident-every", "1s")
	line := d.waitFor(t, "snapshot http://", 60*time.Second)
	u := line[strings.LastIndex(line, "http://"):]
	assertPage(t, u)
	assertTrace(t, u)
	d.stop(t)
	assert.Contains(t, d.output(), "snapshots in "+bucket)

	host, err := os.Hostname()
	require.NoError(t, err)
	store, err := bucketstore.Open(t.Context(), bucket)
	require.NoError(t, err)
	defer store.Close()
	infos, err := store.List(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, infos, "the snapshots are in the bucket after shutdown")
	logged := loggedIDs(d.output(), "http://"+snapAddr+"/snapshots/")
	assert.ElementsMatch(t, logged, ids(infos), "the bucket holds the snapshots logged")
	for _, info := range infos {
		assert.False(t, info.Pending)
		assert.Equal(t, snapstore.Resource{
			ServiceName:       ordersService,
			ServiceNamespace:  "otelfr-demo",
			ServiceInstanceID: "replica-t",
			HostName:          host,
		}, info.Resource, "snapshot %s", info.ID)
	}
}

// loggedIDs returns the IDs of the snapshots the log links to under base,
// each once.
func loggedIDs(log, base string) []string {
	var out []string
	for line := range strings.Lines(log) {
		_, u, ok := strings.Cut(strings.TrimSpace(line), " snapshot "+base)
		id, _, _ := strings.Cut(u, "?")
		if ok && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func ids(infos []snapstore.Info) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.ID)
	}
	return out
}
