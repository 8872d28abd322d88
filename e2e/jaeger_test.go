//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/goleak"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// EnvJaegerBin names the Jaeger v2 binary the test runs; scripts/e2e.sh
// builds it and sets it.
const EnvJaegerBin = "OTELFR_JAEGER_BIN"

// The demo's settings for the run: load for loadDuration, an incident
// every incidentEvery on average once the adaptive trigger has warmed up
// (about 3s), so that every kind strikes at least once. The demo runs with
// its default trigger, the adaptive one: no threshold is set.
const (
	loadDuration     = 30 * time.Second
	incidentEvery    = 3 * time.Second
	snapshotInterval = time.Second
)

// incidentKinds are the demo's incidents, as it names them in the
// demo.incidents attribute.
var incidentKinds = []string{
	"lock_contention", "gc_pressure", "slow_downstream",
	"cpu_saturation", "queue_backlog", "downstream_errors",
}

var client = &http.Client{Timeout: 30 * time.Second}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestJaeger runs Jaeger with the repository's configuration (the one
// docker-compose.yml mounts), runs the demo under load with OTLP to it, and
// checks through Jaeger's query API and the link in Jaeger's UI config
// that a slow span leads to its Go runtime trace.
func TestJaeger(t *testing.T) {
	t.Cleanup(client.CloseIdleConnections)
	bin := os.Getenv(EnvJaegerBin)
	if bin == "" {
		t.Fatalf("%s is not set: run scripts/e2e.sh, which builds Jaeger and sets it", EnvJaegerBin)
	}
	fi, err := os.Stat(bin)
	require.NoError(t, err, "%s=%s", EnvJaegerBin, bin)
	require.True(t, fi.Mode().IsRegular() && fi.Mode()&0o111 != 0, "%s is an executable file", bin)
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	// Jaeger, every endpoint on loopback and on a port of its own, so that
	// a Jaeger the developer runs does not clash.
	j := startJaeger(t, bin, root)
	jaeger, query, otlpAddr, jaegerAddrs, pattern := j.p, j.query, j.otlpAddr, j.addrs, j.pattern

	// The demo, under load, exporting to Jaeger.
	demoBin := filepath.Join(t.TempDir(), "demo")
	build := exec.Command("go", "build", "-o", demoBin, "./examples/demo")
	build.Dir, build.Stderr = root, os.Stderr
	require.NoError(t, build.Run())
	snapAddr := testutil.FreeAddr(t)
	demoAddrs := []string{testutil.FreeAddr(t), testutil.FreeAddr(t), snapAddr}
	startTime := time.Now()
	demo := start(t, "demo",
		[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + otlpAddr, "OTEL_BSP_SCHEDULE_DELAY=200"},
		demoBin,
		"-addr", demoAddrs[0], "-inventory-addr", demoAddrs[1], "-snapshot-addr", snapAddr,
		"-store", t.TempDir(), "-rate", "20", "-duration", loadDuration.String(),
		"-incident-every", incidentEvery.String(), "-snapshot-interval", snapshotInterval.String())
	demo.waitFor(t, "load: done", loadDuration+60*time.Second)

	// Every anomaly the demo logged with a snapshot must reach Jaeger with
	// its attachment.
	logged := loggedSnapshots(demo.output())
	require.NotEmpty(t, logged, "the demo logged anomalies with snapshots")
	var spans []span
	require.Eventually(t, func() bool {
		spans = findSpans(t, query, startTime)
		return allArrived(spans, logged)
	}, 30*time.Second, 500*time.Millisecond, "Jaeger has every logged anomaly and its attachment")

	byID := map[string]span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	var anomalous, attachments []span
	for _, s := range spans {
		switch {
		case s.Name == otelfr.AttachmentSpanName:
			attachments = append(attachments, s)
		case s.Attrs[string(otelfr.SnapshotIDKey)] != "":
			anomalous = append(anomalous, s)
		}
	}
	t.Logf("%d spans in Jaeger: %d anomalous with a snapshot, %d attachments, %d snapshots logged",
		len(spans), len(anomalous), len(attachments), len(logged))

	t.Run("anomalous spans carry their snapshot", func(t *testing.T) {
		reasons, kinds := map[string]bool{}, map[string]bool{}
		for _, s := range anomalous {
			id := s.Attrs[string(otelfr.SnapshotIDKey)]
			assert.Equal(t, "http://"+snapAddr+"/snapshots/"+id+"?span="+s.SpanID, s.Attrs[string(otelfr.SnapshotURLKey)], "%s", s)
			assert.NotEmpty(t, s.Attrs[string(otelfr.SnapshotReasonKey)], "%s", s)
			reasons[s.Attrs[string(otelfr.SnapshotReasonKey)]] = true
			for _, k := range s.List["demo.incidents"] {
				kinds[k] = true
			}
		}
		assert.True(t, reasons[spanprocessor.ReasonAdaptiveLatency], "adaptive latency anomalies: %v", reasons)
		assert.True(t, reasons["error"], "error anomalies: %v", reasons)
		for _, k := range incidentKinds {
			assert.True(t, kinds[k], "an anomalous span with a snapshot names incident %s; got %v", k, kinds)
		}
		for _, l := range logged {
			i := slices.IndexFunc(anomalous, func(s span) bool {
				return s.TraceID == l.traceID && s.Attrs[string(otelfr.SnapshotURLKey)] == l.url
			})
			assert.GreaterOrEqual(t, i, 0, "the logged anomaly %+v is in Jaeger", l)
		}
	})

	t.Run("each has its otelfr.snapshot child linking back", func(t *testing.T) {
		for _, s := range anomalous {
			var children []span
			for _, a := range attachments {
				if a.TraceID == s.TraceID && a.ParentSpanID == s.SpanID {
					children = append(children, a)
				}
			}
			if !assert.Len(t, children, 1, "%s has one attachment child", s) {
				continue
			}
			a := children[0]
			assert.Equal(t, []link{{TraceID: s.TraceID, SpanID: s.SpanID}}, a.Links, "the attachment links to %s", s)
			assert.Equal(t, s.Service, a.Service, "the attachment is in the span's service")
			for _, k := range []attribute.Key{otelfr.SnapshotIDKey, otelfr.SnapshotURLKey, otelfr.SnapshotSpanIDKey, otelfr.SnapshotReasonKey} {
				assert.Equal(t, s.Attrs[string(k)], a.Attrs[string(k)], "%s of %s", k, s)
			}
			for _, k := range []attribute.Key{otelfr.SnapshotSizeKey, otelfr.SnapshotSHA256Key, otelfr.SnapshotTakenAtKey, otelfr.SnapshotWindowStartKey, otelfr.SnapshotWindowEndKey} {
				assert.NotEmpty(t, a.Attrs[string(k)], "%s of the attachment of %s", k, s)
			}
			// Within its parent: Jaeger neither stretches the trace nor
			// warns of clock skew.
			assert.False(t, a.Start.Before(s.Start), "the attachment of %s starts %v before it", s, s.Start.Sub(a.Start))
			assert.False(t, a.End.After(s.End), "the attachment of %s ends %v after it", s, a.End.Sub(s.End))
			for _, w := range a.List[jaegerWarnings] {
				// Jaeger's API can return a trace in chunks as its spans
				// arrived, and adjusts each on its own: an attachment
				// exported before its parent's batch then sits in a chunk
				// without its parent ("parent span ID=… is not in the
				// trace"). That says nothing of the attachment's times; a
				// clock-skew delta does.
				assert.NotContains(t, w, "delta", "Jaeger's warning on the attachment of %s", s)
				if !strings.Contains(w, "delta") {
					t.Logf("Jaeger's warning on the attachment of %s: %s", s, w)
				}
			}
		}
		for _, a := range attachments {
			_, ok := byID[a.ParentSpanID]
			assert.True(t, ok, "the attachment %s has its anomalous parent in Jaeger", a)
		}
	})

	t.Run("the UI link returns the snapshot", func(t *testing.T) {
		done := map[string]bool{}
		for _, a := range attachments {
			id := a.Attrs[string(otelfr.SnapshotIDKey)]
			if done[id] {
				continue
			}
			done[id] = true
			// The UI fills in the span's attributes and the trace's ID.
			link := pattern.expand(a.Attrs, a.TraceID)
			// The template names the port docker-compose.yml publishes;
			// this run's handler listens elsewhere.
			u, err := url.Parse(link)
			require.NoError(t, err)
			spanURL, err := url.Parse(a.Attrs[string(otelfr.SnapshotURLKey)])
			require.NoError(t, err)
			require.Equal(t, spanURL.Path, u.Path, "the link and the span's URL name the same snapshot")
			u.Host = snapAddr
			data := get(t, u.String())
			assert.Equal(t, a.Attrs[string(otelfr.SnapshotSizeKey)], strconv.Itoa(len(data)), "the size the attachment gives")
			assertGoTrace(t, data, link)
		}
		assert.NotEmpty(t, done)
	})

	t.Run("traces with several anomalous spans land on the wrong page", func(t *testing.T) {
		// The link named the trace, not the span (issue 13), so in a trace
		// with several anomalous spans it opened the snapshot's page: every
		// span's link, the UI's way, must open its own page.
		perTrace := map[string]int{}
		for _, s := range anomalous {
			perTrace[s.TraceID]++
		}
		var checked, landed, inShared int
		// An attachment carries the tag too, so the UI links from it as
		// well: to its parent's page.
		for _, s := range append(slices.Clone(anomalous), attachments...) {
			want := s.SpanID
			if s.Name == otelfr.AttachmentSpanName {
				want = s.ParentSpanID
			}
			checked++
			if perTrace[s.TraceID] > 1 {
				inShared++
			}
			if landsOnSpanPage(t, pattern, s, snapAddr, want) {
				landed++
			}
		}
		shared := 0
		for _, n := range perTrace {
			if n > 1 {
				shared++
			}
		}
		t.Logf("UI links: %d of %d landed on their span's own page (%d anomalous spans, %d attachments; %d links in the %d of %d traces with several anomalous spans)",
			landed, checked, len(anomalous), len(attachments), inShared, shared, len(perTrace))
		assert.Equal(t, checked, landed, "every link lands on its span's page")
		assert.Positive(t, shared, "traces with several anomalous spans (the demo's error traces have three)")
	})

	t.Run("attachments stretch their traces", func(t *testing.T) {
		// An attachment timed by its snapshot outlived its parent (issue
		// 13): no trace may be longer than its own spans by more than 1ms.
		byTrace := map[string][]span{}
		for _, s := range spans {
			byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
		}
		var traces, warned int
		var maxStretch time.Duration
		for id, ss := range byTrace {
			var own, all []span
			for _, s := range ss {
				all = append(all, s)
				if s.Name != otelfr.AttachmentSpanName {
					own = append(own, s)
				}
				if slices.ContainsFunc(s.List[jaegerWarnings], func(w string) bool { return strings.Contains(w, "clock skew") }) {
					warned++
				}
			}
			if len(own) == len(all) || len(own) == 0 {
				continue
			}
			traces++
			stretch := extent(all) - extent(own)
			maxStretch = max(maxStretch, stretch)
			assert.LessOrEqual(t, stretch, time.Millisecond, "trace %s: %v long, %v without its attachments", id, extent(all), extent(own))
		}
		t.Logf("%d traces with attachments: the longest stretch by attachments is %v; %d spans with a clock-skew warning", traces, maxStretch, warned)
		assert.Positive(t, traces)
	})

	t.Run("normal spans have no snapshot", func(t *testing.T) {
		normal := 0
		for _, s := range spans {
			if s.Name == otelfr.AttachmentSpanName {
				continue
			}
			_, linked := s.Attrs[string(otelfr.SnapshotIDKey)]
			_, skipped := s.Attrs[string(spanprocessor.SnapshotSkippedKey)]
			switch {
			case s.Error:
				assert.True(t, linked || skipped, "the failed span %s has a snapshot or says why not", s)
			case linked || skipped:
				// Slow for its name: the adaptive trigger never fires
				// below its floor.
				assert.Equal(t, spanprocessor.ReasonAdaptiveLatency, s.Attrs[string(otelfr.SnapshotReasonKey)], "%s", s)
				assert.GreaterOrEqual(t, s.Duration, spanprocessor.DefaultAdaptiveFloor, "%s", s)
			default:
				normal++
			}
		}
		assert.Greater(t, normal, 10*len(anomalous), "most spans are normal")
	})

	// Stop both, and leave nothing listening.
	demo.stop(t)
	jaeger.stop(t)
	for _, addr := range append(demoAddrs, jaegerAddrs...) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		assert.Error(t, err, "nothing listens on %s any more", addr)
	}
}

// checkUIConfig checks that Jaeger serves the UI config with its link
// pattern, and returns the pattern.
// waitForQuery waits for the query API of the Jaeger at query to answer.
func waitForQuery(t *testing.T, query string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := client.Get(query + "/api/v3/services")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 200*time.Millisecond, "Jaeger's query API at %s answers", query)
}

func checkUIConfig(t *testing.T, query, path string) linkPattern {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var want uiConfig
	require.NoError(t, json.Unmarshal(data, &want))
	require.Len(t, want.LinkPatterns, 1)
	p := want.LinkPatterns[0]
	assert.Equal(t, "tags", p.Type)
	assert.Equal(t, string(otelfr.SnapshotIDKey), p.Key, "the link hangs on the attribute otelfr emits")

	// Jaeger writes the UI config into its index page.
	page := get(t, query+"/")
	m := regexp.MustCompile(`JAEGER_CONFIG = (\{.*\});`).FindSubmatch(page)
	require.NotNil(t, m, "the index page carries JAEGER_CONFIG:\n%s", page)
	var served uiConfig
	require.NoError(t, json.Unmarshal(m[1], &served))
	assert.Equal(t, want, served, "Jaeger serves deploy/jaeger/ui.json")
	return p
}

// jaegerWarnings is the attribute in which Jaeger's query service puts the
// warnings of its adjusters, such as clock skew.
const jaegerWarnings = "@jaeger@warnings"

// landsOnSpanPage follows s's UI link as a browser does, on the handler at
// snapAddr, and reports whether it lands on the page of span want.
func landsOnSpanPage(t *testing.T, pattern linkPattern, s span, snapAddr, want string) bool {
	t.Helper()
	link := pattern.expand(s.Attrs, s.TraceID)
	u, err := url.Parse(link)
	require.NoError(t, err)
	u.Host = snapAddr // the template names the port docker-compose.yml publishes
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	resp, err := client.Do(req)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	return assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", s, link) &&
		assert.Equal(t, want, resp.Request.URL.Query().Get("span"), "%s: %s lands on the page of span %s", s, link, want) &&
		assert.Contains(t, string(page), "› span <code>"+want+"</code>", "%s: the page is span %s's", s, want)
}

// extent is how long the spans last together, from the first start to the
// last end.
func extent(spans []span) time.Duration {
	first, last := spans[0].Start, spans[0].End
	for _, s := range spans[1:] {
		if s.Start.Before(first) {
			first = s.Start
		}
		if s.End.After(last) {
			last = s.End
		}
	}
	return last.Sub(first)
}

type uiConfig struct {
	LinkPatterns []linkPattern `json:"linkPatterns"`
}

// linkPattern is one of the Jaeger UI's linkPatterns.
type linkPattern struct {
	Type string `json:"type"`
	Key  string `json:"key"`
	URL  string `json:"url"`
	Text string `json:"text"`
}

// expand fills in the URL template as the Jaeger UI (v2) does for a "tags"
// pattern: #{trace.traceID} becomes the trace's ID, any other #{key} the
// span attribute's value, URL-encoded. It fails the template if a value is
// missing, as the UI then shows no link.
func (p linkPattern) expand(attrs map[string]string, traceID string) string {
	return regexp.MustCompile(`#\{([^}]+)\}`).ReplaceAllStringFunc(p.URL, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := attrs[name]
		if name == "trace.traceID" {
			v, ok = traceID, true
		}
		if !ok {
			return "MISSING-" + m
		}
		return url.QueryEscape(v)
	})
}

// span is a span as Jaeger's API v3 returns it, flattened.
type span struct {
	TraceID, SpanID, ParentSpanID string
	Name, Service                 string
	Instance                      string // the resource's service.instance.id
	Start, End                    time.Time
	Duration                      time.Duration
	Error                         bool
	Attrs                         map[string]string   // scalar values, as strings
	List                          map[string][]string // array values
	Links                         []link
}

type link struct{ TraceID, SpanID string }

func (s span) String() string {
	return fmt.Sprintf("%s %q %s/%s (%v)", s.Service, s.Name, s.TraceID, s.SpanID, s.Duration)
}

// loggedSnapshot is an anomaly line of the demo's log that names a
// snapshot.
type loggedSnapshot struct{ traceID, url string }

var anomalyLine = regexp.MustCompile(`anomaly: .* trace ([0-9a-f]{32}): snapshot (\S+)`)

func loggedSnapshots(log string) []loggedSnapshot {
	var out []loggedSnapshot
	for _, m := range anomalyLine.FindAllStringSubmatch(log, -1) {
		out = append(out, loggedSnapshot{traceID: m[1], url: m[2]})
	}
	return out
}

// allArrived reports whether spans hold every logged anomaly and an
// attachment for each.
func allArrived(spans []span, logged []loggedSnapshot) bool {
	for _, l := range logged {
		var anomaly, attachment bool
		for _, s := range spans {
			if s.TraceID == l.traceID && s.Attrs[string(otelfr.SnapshotURLKey)] == l.url {
				anomaly = anomaly || s.Name != otelfr.AttachmentSpanName
				attachment = attachment || s.Name == otelfr.AttachmentSpanName
			}
		}
		if !anomaly || !attachment {
			return false
		}
	}
	return true
}

// findSpans searches Jaeger for the demo's traces since start (every
// request enters through the orders service) and returns their spans,
// fetching each trace by ID.
func findSpans(t *testing.T, query string, start time.Time) []span {
	t.Helper()
	q := url.Values{
		"query.service_name":   {"demo-orders"},
		"query.start_time_min": {start.Add(-time.Minute).UTC().Format(time.RFC3339Nano)},
		"query.start_time_max": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)},
		"query.num_traces":     {"5000"},
	}
	found := decodeSpans(t, get(t, query+"/api/v3/traces?"+q.Encode()))
	ids := map[string]bool{}
	for _, s := range found {
		ids[s.TraceID] = true
	}
	var spans []span
	for id := range ids {
		spans = append(spans, decodeSpans(t, get(t, query+"/api/v3/traces/"+id))...)
	}
	return spans
}

// The parts of the OTLP JSON that Jaeger's API v3 returns which the test
// reads.
type (
	apiResponse struct {
		Result struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []apiKV `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []apiSpan `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		} `json:"result"`
	}
	apiSpan struct {
		TraceID      string  `json:"traceId"`
		SpanID       string  `json:"spanId"`
		ParentSpanID string  `json:"parentSpanId"`
		Name         string  `json:"name"`
		Start        string  `json:"startTimeUnixNano"`
		End          string  `json:"endTimeUnixNano"`
		Attributes   []apiKV `json:"attributes"`
		Links        []struct {
			TraceID string `json:"traceId"`
			SpanID  string `json:"spanId"`
		} `json:"links"`
		Status struct {
			Code json.RawMessage `json:"code"`
		} `json:"status"`
	}
	apiKV struct {
		Key   string   `json:"key"`
		Value apiValue `json:"value"`
	}
	apiValue struct {
		StringValue *string         `json:"stringValue"`
		IntValue    json.RawMessage `json:"intValue"`
		DoubleValue json.RawMessage `json:"doubleValue"`
		BoolValue   *bool           `json:"boolValue"`
		ArrayValue  *struct {
			Values []apiValue `json:"values"`
		} `json:"arrayValue"`
	}
)

func (v apiValue) String() string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return strings.Trim(string(v.IntValue), `"`)
	case v.DoubleValue != nil:
		return strings.Trim(string(v.DoubleValue), `"`)
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	}
	return ""
}

func decodeSpans(t *testing.T, body []byte) []span {
	t.Helper()
	var r apiResponse
	require.NoError(t, json.Unmarshal(body, &r), "%.500s", body)
	var out []span
	for _, rs := range r.Result.ResourceSpans {
		service, instance := "", ""
		for _, kv := range rs.Resource.Attributes {
			switch kv.Key {
			case "service.name":
				service = kv.Value.String()
			case "service.instance.id":
				instance = kv.Value.String()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				start, err := strconv.ParseInt(s.Start, 10, 64)
				require.NoError(t, err)
				end, err := strconv.ParseInt(s.End, 10, 64)
				require.NoError(t, err)
				sp := span{
					TraceID: strings.ToLower(s.TraceID), SpanID: strings.ToLower(s.SpanID),
					ParentSpanID: strings.ToLower(s.ParentSpanID),
					Name:         s.Name, Service: service, Instance: instance,
					Start: time.Unix(0, start), End: time.Unix(0, end),
					Duration: time.Duration(end - start),
					// OTLP's STATUS_CODE_ERROR, by number or by name.
					Error: string(s.Status.Code) == "2" || strings.Contains(string(s.Status.Code), "ERROR"),
					Attrs: map[string]string{}, List: map[string][]string{},
				}
				for _, kv := range s.Attributes {
					if kv.Value.ArrayValue != nil {
						for _, v := range kv.Value.ArrayValue.Values {
							sp.List[kv.Key] = append(sp.List[kv.Key], v.String())
						}
						continue
					}
					sp.Attrs[kv.Key] = kv.Value.String()
				}
				for _, l := range s.Links {
					sp.Links = append(sp.Links, link{TraceID: strings.ToLower(l.TraceID), SpanID: strings.ToLower(l.SpanID)})
				}
				out = append(out, sp)
			}
		}
	}
	return out
}

func get(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := client.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %.500s", u, body)
	return body
}

// assertGoTrace checks that data is a Go execution trace with events.
func assertGoTrace(t *testing.T, data []byte, what string) {
	t.Helper()
	assert.NotEmpty(t, testutil.ReadTrace(t, data, what), what)
}

// process is a program the test started, with its output so far.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when it has exited
	err  error         // its exit status, once done
}

// start starts a program with env added to the environment, less the
// OTEL_* and OTELFR_* variables; the test's cleanup kills it by PID if it
// still runs.
func start(t *testing.T, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") && !strings.HasPrefix(kv, "OTELFR_") && !strings.HasPrefix(kv, "JAEGER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &process{name: name, cmd: cmd, out: newSyncBuffer(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start(), "starting %s", name)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output (last 8 KiB):\n%s", name, tail(p.output(), 8<<10))
		}
	})
	return p
}

func (p *process) output() string { return p.out.String() }

// waitFor waits until the output holds s.
func (p *process) waitFor(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		grown := p.out.grown() // before reading, so that no write is missed
		if strings.Contains(p.output(), s) {
			return
		}
		select {
		case <-grown:
		case <-p.done:
			if !strings.Contains(p.output(), s) {
				t.Fatalf("%s exited (%v) before writing %q", p.name, p.err, s)
			}
			return
		case <-deadline:
			t.Fatalf("%s did not write %q within %v", p.name, s, timeout)
		}
	}
}

// stop sends SIGINT and requires a clean exit within 30s.
func (p *process) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s of SIGINT", p.name)
	}
	require.NoError(t, p.err, "%s exits cleanly on SIGINT", p.name)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// syncBuffer collects a process's output; grown's channel is closed at the
// next write.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wake: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.wake)
	b.wake = make(chan struct{})
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) grown() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.wake
}
