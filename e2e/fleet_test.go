//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// The fleet's run: each replica's load lasts fleetLoad, with an incident
// every fleetIncidents on average and a snapshot at most every
// fleetInterval, which gives each a dozen snapshots or so, some of them
// taken while the bucket is down for bucketDown. Once the load is over,
// every snapshot must reach the central viewer within fleetDrain: the
// uploaders retry at most 30s apart.
const (
	fleetLoad      = 80 * time.Second
	fleetRate      = 10 // requests per second, per replica
	fleetIncidents = 4 * time.Second
	fleetInterval  = 2 * time.Second
	bucketDown     = 30 * time.Second
	fleetDrain     = 2 * time.Minute
)

// replicaNames are the service.instance.id of the demo's replicas.
var replicaNames = []string{"replica-a", "replica-b"}

// poll is the client of the checks repeated while something may be down.
var poll = &http.Client{Timeout: 5 * time.Second}

// replica is one of the fleet's demo processes.
type replica struct {
	name     string
	p        *process
	snapAddr string   // its own snapshot handler
	addrs    []string // every address it listens on
}

// TestFleet runs a fleet as docker-compose.yml describes it, as processes:
// two replicas of the demo that write their snapshots to one S3 bucket
// (SeaweedFS), `otelfr serve` over that bucket as the central viewer, and
// Jaeger, which both replicas export to. Mid-run the bucket is stopped
// for 30s and started again, under load. It checks that every snapshot
// either replica took, during the outage too, reaches the bucket and the
// central viewer, with its replica's instance; that Jaeger holds both
// replicas' anomalous spans and their attachments; that the link the
// Jaeger UI shows, filled in as the UI fills it, opens each span's own
// page, with its diagnosis, through the central viewer; and that the
// viewer's index filters by instance.
func TestFleet(t *testing.T) {
	t.Cleanup(client.CloseIdleConnections)
	t.Cleanup(poll.CloseIdleConnections)
	jaegerBin := jaegerBinary(t)
	if os.Getenv(testutil.EnvWeedBin) == "" {
		t.Fatalf("%s is not set: run `%s=$(scripts/seaweedfs.sh) scripts/e2e.sh`, which builds SeaweedFS once and prints its path",
			testutil.EnvWeedBin, testutil.EnvWeedBin)
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bins := buildAll(t, root, "./examples/demo", "./cmd/otelfr")

	s3 := testutil.StartS3(t)
	j := startJaeger(t, jaegerBin, root)

	// The central viewer, over the bucket.
	serveAddr := testutil.FreeAddr(t)
	viewerURL := "http://" + serveAddr + "/snapshots/"
	serve := start(t, "otelfr serve", append(s3.Env(), "XDG_CACHE_HOME="+t.TempDir()),
		bins["otelfr"], "serve", "-store", s3.URL(), "-addr", serveAddr)
	serve.waitFor(t, "otelfr serve: serving "+viewerURL+" from ", 30*time.Second)
	require.Eventually(t, func() bool { return healthz(serveAddr) == http.StatusOK },
		10*time.Second, 100*time.Millisecond, "otelfr serve is healthy while the bucket answers")

	// The replicas: one bucket, each its own spool (under its cache
	// directory) and instance, links to the central viewer.
	var fleet []*replica
	for _, name := range replicaNames {
		r := &replica{name: name, snapAddr: testutil.FreeAddr(t)}
		r.addrs = []string{testutil.FreeAddr(t), testutil.FreeAddr(t), r.snapAddr}
		env := append(s3.Env(),
			"OTELFR_STORE="+s3.URL(),
			"OTEL_RESOURCE_ATTRIBUTES=service.instance.id="+name,
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+j.otlpAddr,
			"OTEL_BSP_SCHEDULE_DELAY=200",
			"XDG_CACHE_HOME="+t.TempDir(),
		)
		r.p = start(t, name, env, bins["demo"],
			"-addr", r.addrs[0], "-inventory-addr", r.addrs[1], "-snapshot-addr", r.snapAddr,
			"-snapshot-base-url", viewerURL,
			"-rate", fmt.Sprint(fleetRate), "-duration", fleetLoad.String(),
			"-incident-every", fleetIncidents.String(), "-snapshot-interval", fleetInterval.String())
		fleet = append(fleet, r)
	}
	started := time.Now()

	// Before the outage, each replica's first snapshot reaches the
	// viewer: the bucket path works.
	for _, r := range fleet {
		r.p.waitFor(t, " snapshot "+viewerURL, 60*time.Second)
	}
	require.Eventually(t, func() bool {
		return len(missing(takenBy(fleet, viewerURL), listed(viewerURL))) == 0
	}, 30*time.Second, 500*time.Millisecond, "the first snapshots reach the central viewer")

	// The outage: the bucket stops for bucketDown, under load.
	downAt := time.Now()
	s3.Stop()
	stopped := time.Since(downAt)
	before := logMarks(fleet)
	require.Eventually(t, func() bool { return healthz(serveAddr) != http.StatusOK },
		15*time.Second, 200*time.Millisecond, "otelfr serve is unhealthy while the bucket is down")
	// Snapshots are still taken, and each replica serves its own from
	// its spool, pending.
	for _, r := range fleet {
		var id string
		require.Eventually(t, func() bool {
			ids := snapshotIDs(r.p.output()[before[r]:], viewerURL)
			if len(ids) > 0 {
				id = ids[0]
			}
			return id != ""
		}, bucketDown, 200*time.Millisecond, "%s takes a snapshot while the bucket is down", r.name)
		var info snapstore.Info
		require.NoError(t, json.Unmarshal(get(t, "http://"+r.snapAddr+"/snapshots/"+id+".json"), &info))
		assert.True(t, info.Pending, "%s serves its snapshot %s from its spool while the bucket is down", r.name, id)
	}
	time.Sleep(time.Until(downAt.Add(bucketDown)))
	s3.Start()
	upAt := time.Now()
	after := logMarks(fleet)
	t.Logf("the bucket was down %v (stopping it took %v)", upAt.Sub(downAt).Round(100*time.Millisecond), stopped.Round(100*time.Millisecond))
	require.Eventually(t, func() bool { return healthz(serveAddr) == http.StatusOK },
		15*time.Second, 200*time.Millisecond, "otelfr serve is healthy again once the bucket is back")
	// The spools drain, under load: what was taken until the bucket came
	// back reaches the viewer.
	spooled := map[string][]string{}
	for _, r := range fleet {
		spooled[r.name] = snapshotIDs(r.p.output()[:after[r]], viewerURL)
	}
	require.Eventually(t, func() bool { return len(missing(spooled, listed(viewerURL))) == 0 },
		fleetDrain, time.Second, "the snapshots taken until the bucket came back reach the central viewer within %v", fleetDrain)
	t.Logf("the snapshots taken until the bucket came back were all listed %v after", time.Since(upAt).Round(100*time.Millisecond))

	for _, r := range fleet {
		r.p.waitFor(t, "load: done", time.Until(started.Add(fleetLoad+60*time.Second)))
	}
	loadDone := time.Now()

	// Every snapshot reaches the central viewer, which lists those the
	// replicas logged and no others. The logs are read together with the
	// listing, the load over, and serve every check below.
	var (
		all   map[string]snapstore.Info
		taken map[string][]string // snapshot IDs by replica, as logged
		logs  map[string]string   // by replica
	)
	drained := assert.Eventually(t, func() bool {
		logs = map[string]string{}
		for _, r := range fleet {
			logs[r.name] = r.p.output()
		}
		taken = map[string][]string{}
		for name, out := range logs {
			taken[name] = snapshotIDs(out, viewerURL)
		}
		all = listed(viewerURL)
		return all != nil && len(missing(taken, all)) == 0 && len(extra(taken, all)) == 0
	}, fleetDrain, time.Second, "every snapshot reaches the central viewer within %v of the load's end", fleetDrain)
	if !drained {
		taken, all := takenBy(fleet, viewerURL), listed(viewerURL)
		t.Fatalf("the central viewer lacks %v and lists %v besides", missing(taken, all), extra(taken, all))
	}
	t.Logf("every snapshot listed %v after the load ended", time.Since(loadDone).Round(100*time.Millisecond))
	during := map[string][]string{} // taken while the bucket was down
	for _, r := range fleet {
		during[r.name] = snapshotIDs(logs[r.name][before[r]:after[r]], viewerURL)
		t.Logf("%s took %d snapshots, %d while the bucket was down", r.name, len(taken[r.name]), len(during[r.name]))
	}

	t.Run("every snapshot is in the bucket with its replica's instance", func(t *testing.T) {
		for _, r := range fleet {
			for _, id := range taken[r.name] {
				info := all[id]
				assert.False(t, info.Pending, "%s: %s is in the bucket, not only in a spool", r.name, id)
				assert.Equal(t, r.name, info.Resource.ServiceInstanceID, "%s: the instance of %s", r.name, id)
				assert.NotEmpty(t, info.Resource.HostName, "%s: the host of %s", r.name, id)
				assert.Equal(t, "demo-orders", info.Resource.ServiceName, "%s: the service of %s", r.name, id)
			}
		}
		assert.Empty(t, extra(taken, all), "the bucket holds the replicas' snapshots and nothing else")
	})

	// Jaeger: each logged anomaly's trace, with its attachment.
	var logged []loggedSnapshot
	for _, out := range logs {
		logged = append(logged, loggedSnapshots(out)...)
	}
	var spans []span
	require.Eventually(t, func() bool {
		spans = traceSpans(t, j.query, logged)
		return allArrived(spans, logged)
	}, 30*time.Second, time.Second, "Jaeger has every logged anomaly and its attachment")

	t.Run("Jaeger has both replicas' spans", func(t *testing.T) {
		attached := map[string][]string{} // snapshot IDs of the attachments, by instance
		for _, s := range spans {
			if s.Name == otelfr.AttachmentSpanName {
				id := s.Attrs[string(otelfr.SnapshotIDKey)]
				if !slices.Contains(attached[s.Instance], id) {
					attached[s.Instance] = append(attached[s.Instance], id)
				}
			}
			if id := s.Attrs[string(otelfr.SnapshotIDKey)]; id != "" {
				assert.Equal(t, viewerURL+id+"?span="+s.Attrs[string(otelfr.SnapshotSpanIDKey)],
					s.Attrs[string(otelfr.SnapshotURLKey)], "%s links to the central viewer", s)
			}
		}
		for _, r := range fleet {
			assert.ElementsMatch(t, taken[r.name], attached[r.name], "the attachments of %s's spans", r.name)
		}
		assert.Len(t, attached, len(fleet), "attachments of every replica, and of no other instance: %v", slices.Collect(maps.Keys(attached)))
	})

	t.Run("the UI link opens the span page through the central viewer", func(t *testing.T) {
		for _, r := range fleet {
			// A span whose snapshot was taken before the outage, one
			// during it and one after, where there are.
			picked := map[string]bool{}
			for _, ids := range [][]string{taken[r.name][:1], during[r.name], taken[r.name][len(taken[r.name])-1:]} {
				i := slices.IndexFunc(spans, func(s span) bool {
					id := s.Attrs[string(otelfr.SnapshotIDKey)]
					return s.Instance == r.name && s.Name != otelfr.AttachmentSpanName && slices.Contains(ids, id) && !picked[id]
				})
				if i < 0 {
					continue
				}
				s := spans[i]
				id := s.Attrs[string(otelfr.SnapshotIDKey)]
				picked[id] = true
				if !landsOnSpanPage(t, j.pattern, s, serveAddr, s.SpanID) {
					continue
				}
				page := spanPageAt(t, j.pattern, s, serveAddr)
				assert.Contains(t, page, `id="verdict"`, "%s: the page of %s has its diagnosis", r.name, s)
				assert.Contains(t, page, r.name, "%s: the page of %s names the replica's instance", r.name, s)
				var info snapstore.Info
				require.NoError(t, json.Unmarshal(get(t, viewerURL+id+".json"), &info))
				assert.Equal(t, r.name, info.Resource.ServiceInstanceID, "%s: the snapshot of %s is the replica's", r.name, s)
				t.Logf("%s: %s opens its page, snapshot %s", r.name, s, id)
			}
			assert.NotEmpty(t, picked, "%s: spans to follow the link of", r.name)
		}
	})

	t.Run("the index filters by instance", func(t *testing.T) {
		for i, r := range fleet {
			other := fleet[1-i]
			page := getHTML(t, viewerURL+"?instance="+url.QueryEscape(r.name))
			var left, wrong []string
			for _, id := range taken[r.name] {
				if !strings.Contains(page, id) {
					left = append(left, id)
				}
			}
			for _, id := range taken[other.name] {
				if strings.Contains(page, id) {
					wrong = append(wrong, id)
				}
			}
			assert.Empty(t, left, "?instance=%s lists every snapshot of %s's", r.name, r.name)
			assert.Empty(t, wrong, "?instance=%s lists none of %s's", r.name, other.name)
		}
	})

	// Stop everything, and leave nothing listening.
	addrs := slices.Clone(j.addrs)
	for _, r := range fleet {
		r.p.stop(t)
		addrs = append(addrs, r.addrs...)
	}
	serve.stop(t)
	j.p.stop(t)
	s3.Stop()
	for _, addr := range append(addrs, serveAddr, strings.TrimPrefix(s3.Endpoint, "http://")) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		assert.Error(t, err, "nothing listens on %s any more", addr)
	}
}

// jaegerRun is a Jaeger the test started.
type jaegerRun struct {
	p        *process
	query    string // the query API's base URL
	otlpAddr string // OTLP/gRPC
	addrs    []string
	pattern  linkPattern // the UI's link to the viewer
}

// startJaeger starts Jaeger with the repository's configuration and every endpoint on a loopback port of its own, and
// returns once its query API answers and serves the UI config.
func startJaeger(t *testing.T, bin, root string) jaegerRun {
	t.Helper()
	uiConfig := filepath.Join(root, "deploy", "jaeger", "ui.json")
	queryAddr, otlpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	addrs := []string{queryAddr, otlpAddr, testutil.FreeAddr(t), testutil.FreeAddr(t)}
	p := start(t, "jaeger", []string{"JAEGER_LISTEN_HOST=127.0.0.1"}, bin,
		"--config="+filepath.Join(root, "deploy", "jaeger", "config.yaml"),
		"--set=extensions.jaeger_query.ui.config_file="+uiConfig,
		"--set=extensions.jaeger_query.enable_tracing=false",
		"--set=extensions.jaeger_query.http.endpoint="+queryAddr,
		"--set=receivers.otlp.protocols.grpc.endpoint="+otlpAddr,
		"--set=extensions.jaeger_query.grpc.endpoint="+addrs[2],
		"--set=receivers.otlp.protocols.http.endpoint="+addrs[3],
	)
	query := "http://" + queryAddr
	waitForQuery(t, query)
	return jaegerRun{p: p, query: query, otlpAddr: otlpAddr, addrs: addrs, pattern: checkUIConfig(t, query, uiConfig)}
}

// buildAll builds the packages (paths relative to root) into a directory
// of the test's, and returns each binary's path by its name.
func buildAll(t *testing.T, root string, pkgs ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	build.Dir, build.Stderr = root, os.Stderr
	require.NoError(t, build.Run())
	bins := map[string]string{}
	for _, p := range pkgs {
		bins[filepath.Base(p)] = filepath.Join(dir, filepath.Base(p))
	}
	return bins
}

// healthz returns the status of otelfr serve's health check at addr, or 0
// if it does not answer.
func healthz(addr string) int {
	resp, err := poll.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// listed returns the snapshots that the viewer at viewerURL lists, by ID,
// or nil if it does not answer.
func listed(viewerURL string) map[string]snapstore.Info {
	resp, err := poll.Get(viewerURL + "snapshots.json")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var infos []snapstore.Info
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&infos) != nil {
		return nil
	}
	m := map[string]snapstore.Info{}
	for _, i := range infos {
		m[i.ID] = i
	}
	return m
}

// takenBy returns, by replica, the IDs of the snapshots it has logged so
// far.
func takenBy(fleet []*replica, viewerURL string) map[string][]string {
	taken := map[string][]string{}
	for _, r := range fleet {
		taken[r.name] = snapshotIDs(r.p.output(), viewerURL)
	}
	return taken
}

// missing returns, by replica, the snapshots taken that all lacks.
func missing(taken map[string][]string, all map[string]snapstore.Info) map[string][]string {
	out := map[string][]string{}
	for name, ids := range taken {
		for _, id := range ids {
			if _, ok := all[id]; !ok {
				out[name] = append(out[name], id)
			}
		}
	}
	return out
}

// extra returns the snapshots of all that no replica took.
func extra(taken map[string][]string, all map[string]snapstore.Info) []string {
	var out []string
	for id := range all {
		if !slices.ContainsFunc(slices.Collect(maps.Values(taken)), func(ids []string) bool { return slices.Contains(ids, id) }) {
			out = append(out, id)
		}
	}
	return out
}

// snapshotIDs returns the IDs of the snapshots that the demo's log links
// to under viewerURL, each once, in order.
func snapshotIDs(log, viewerURL string) []string {
	var ids []string
	for _, l := range loggedSnapshots(log) {
		id, ok := strings.CutPrefix(l.url, viewerURL)
		id, _, _ = strings.Cut(id, "?")
		if ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// logMarks returns how much each replica has logged so far.
func logMarks(fleet []*replica) map[*replica]int {
	m := map[*replica]int{}
	for _, r := range fleet {
		m[r] = len(r.p.output())
	}
	return m
}

// traceSpans fetches from Jaeger the traces of the logged anomalies, and
// returns their spans; a trace Jaeger does not have yet is left out.
func traceSpans(t *testing.T, query string, logged []loggedSnapshot) []span {
	t.Helper()
	var spans []span
	seen := map[string]bool{}
	for _, l := range logged {
		if seen[l.traceID] {
			continue
		}
		seen[l.traceID] = true
		resp, err := client.Get(query + "/api/v3/traces/" + l.traceID)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		if resp.StatusCode == http.StatusNotFound {
			continue
		}
		require.Equal(t, http.StatusOK, resp.StatusCode, "trace %s: %.500s", l.traceID, body)
		spans = append(spans, decodeSpans(t, body)...)
	}
	return spans
}

// spanPageAt returns the page that s's UI link opens on the viewer at
// addr, as a browser gets it.
func spanPageAt(t *testing.T, pattern linkPattern, s span, addr string) string {
	t.Helper()
	u, err := url.Parse(pattern.expand(s.Attrs, s.TraceID))
	require.NoError(t, err)
	u.Host = addr // the template names the port docker-compose.yml publishes
	return getHTML(t, u.String())
}

// getHTML gets u as a browser does, and returns the page.
func getHTML(t *testing.T, u string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %.500s", u, page)
	return string(page)
}
