package viewer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// How the causes page reads a store that pages: pages of causesPageSize
// snapshots, newest first, until one is older than the range's start, and
// at most maxCausePages of them, so that a wide range over a large bucket
// costs a bounded number of requests; a report cut short says so
// (CauseReport.Truncated).
const (
	causesPageSize = 1000
	maxCausePages  = 50
)

// Bounds of a causes report.
const (
	// DefaultCausesSince is the range of a report that names none: the
	// last hour.
	DefaultCausesSince = time.Hour
	// maxCausesRange bounds a report's range.
	maxCausesRange = 31 * 24 * time.Hour
	// maxExamples is how many example spans a group links to, the newest.
	maxExamples = 3
	// trendBuckets is how many points a group's trend has.
	trendBuckets = 24
)

var errBadRange = errors.New("since must be a positive Go duration (90m, 24h) of at most 31 days, and from and to RFC 3339 times with from before to")

// CausesQuery selects the anomalies a [CauseReport] groups: those whose
// span ended in [From, To), of the service, span name, reason and replica
// given (an empty field keeps all). A span's service is its own
// (snapstore.SpanRef.Service), else its snapshot's. A replica is named by
// its service.instance.id, or where that is missing its pod or host name.
type CausesQuery struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Service string    `json:"service,omitempty"`
	Span    string    `json:"span,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Replica string    `json:"replica,omitempty"`
}

// CauseReport is the anomalies of a time range grouped by service, span
// name and cause, the groups that lost the most time first.
type CauseReport struct {
	Query CausesQuery `json:"query"`
	// Anomalies is how many anomalous spans matched, in Groups.
	Anomalies int `json:"anomalies"`
	// Snapshots is how many stored snapshots were read to find them.
	Snapshots int `json:"snapshots_read"`
	// Truncated is set when the store holds older snapshots in the range
	// than the report read (it reads at most 50,000).
	Truncated bool         `json:"truncated,omitempty"`
	Groups    []CauseGroup `json:"groups"`
}

// CauseGroup is the anomalies of one service and span name that share a
// cause.
type CauseGroup struct {
	// Service is the spans' own service.name (snapstore.SpanRef.Service),
	// else their snapshot's.
	Service string `json:"service,omitempty"`
	Span    string `json:"span"`
	// Cause is the diagnosis's grouping key (snapstore.SpanRef.Cause;
	// analysis.Diagnosis.Cause tells how it is formed). A span stored
	// without one, by an older version, is grouped by its verdict with
	// every number replaced by "#"; one without a diagnosis, as "not
	// diagnosed".
	Cause string `json:"cause"`
	// Verdict is the newest span's verdict, an example of the group's.
	Verdict string `json:"verdict,omitempty"`
	Count   int    `json:"count"`
	// Lost is the spans' total duration, P50 and P99 its percentiles.
	Lost time.Duration `json:"lost_ns"`
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	// FirstSeen and LastSeen are the ends of the oldest and newest span.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Reasons are the triggers that selected the spans, sorted.
	Reasons []string `json:"reasons"`
	// Replicas are those whose spans the group holds, sorted.
	Replicas []string `json:"replicas,omitempty"`
	// Examples are the newest spans, at most 3.
	Examples []CauseExample `json:"examples"`
	// Trend counts the spans in each of 24 equal stretches of the range,
	// oldest first.
	Trend []int `json:"trend"`

	durations []time.Duration
}

// CauseExample is one span of a group, whose page is at Snapshot?span=SpanID
// under the viewer.
type CauseExample struct {
	Snapshot string        `json:"snapshot"`
	TraceID  string        `json:"trace_id"`
	SpanID   string        `json:"span_id"`
	Replica  string        `json:"replica,omitempty"`
	End      time.Time     `json:"end"`
	Duration time.Duration `json:"duration_ns"`
}

// Link is the example's span page, relative to the viewer's root.
func (e CauseExample) Link() string {
	return url.PathEscape(e.Snapshot) + "?span=" + url.QueryEscape(e.SpanID)
}

// replicaName names the replica of r for a causes report.
func replicaName(r snapstore.Resource) string {
	switch {
	case r.ServiceInstanceID != "":
		return r.ServiceInstanceID
	case r.K8sPodName != "":
		return r.K8sPodName
	}
	return r.HostName
}

// numbers matches what a verdict's grouping leaves out: counts, shares,
// durations, goroutine IDs.
var numbers = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)

// causeOf returns the grouping key of a stored span.
func causeOf(ref snapstore.SpanRef) string {
	switch {
	case ref.Cause != "":
		return ref.Cause
	case ref.Verdict != "":
		return numbers.ReplaceAllString(ref.Verdict, "#")
	}
	return "not diagnosed"
}

// Causes reads the anomalies that q selects from store and groups them
// by service, span name and cause. Over a store that pages
// (snapstore.Pager) it reads pages, newest first, until it passes q.From,
// and at most 50,000 snapshots; otherwise it lists the store. The
// `otelfr causes` command and the viewer's /causes page both call it.
func Causes(ctx context.Context, store snapstore.Store, q CausesQuery) (*CauseReport, error) {
	rep := &CauseReport{Query: q, Groups: []CauseGroup{}}
	type key struct{ service, span, cause string }
	idx := map[key]int{}
	span := q.To.Sub(q.From)
	add := func(in snapstore.Info) {
		rep.Snapshots++
		rn := replicaName(in.Resource)
		if q.Replica != "" && rn != q.Replica {
			return
		}
		for _, ref := range in.Spans {
			// A span's own service, where it was stored with one: one
			// process may run several services, and the snapshot's
			// resource names one of them.
			service := cmp.Or(ref.Service, in.Resource.ServiceName)
			if ref.End.Before(q.From) || !ref.End.Before(q.To) || q.Service != "" && service != q.Service ||
				q.Span != "" && ref.Name != q.Span || q.Reason != "" && ref.Reason != q.Reason {
				continue
			}
			k := key{service, ref.Name, causeOf(ref)}
			i, ok := idx[k]
			if !ok {
				i = len(rep.Groups)
				idx[k] = i
				rep.Groups = append(rep.Groups, CauseGroup{
					Service: k.service, Span: k.span, Cause: k.cause, Verdict: ref.Verdict,
					FirstSeen: ref.End, LastSeen: ref.End, Trend: make([]int, trendBuckets),
				})
			}
			g := &rep.Groups[i]
			d := max(ref.End.Sub(ref.Start), 0)
			g.Count++
			g.Lost += d
			g.durations = append(g.durations, d)
			if ref.End.Before(g.FirstSeen) {
				g.FirstSeen = ref.End
			}
			if ref.End.After(g.LastSeen) {
				g.LastSeen, g.Verdict = ref.End, ref.Verdict
			}
			if !slices.Contains(g.Reasons, ref.Reason) {
				g.Reasons = append(g.Reasons, ref.Reason)
			}
			if rn != "" && !slices.Contains(g.Replicas, rn) {
				g.Replicas = append(g.Replicas, rn)
			}
			g.Examples = append(g.Examples, CauseExample{
				Snapshot: in.ID, TraceID: ref.TraceID, SpanID: ref.SpanID, Replica: rn, End: ref.End, Duration: d,
			})
			if len(g.Examples) > 2*maxExamples {
				g.Examples = newestExamples(g.Examples)
			}
			if span > 0 {
				b := int(int64(ref.End.Sub(q.From)) * trendBuckets / int64(span))
				g.Trend[min(max(b, 0), trendBuckets-1)]++
			}
			rep.Anomalies++
		}
	}
	if pager, ok := store.(snapstore.Pager); ok {
		tok := ""
		for pages := 0; ; pages++ {
			if pages == maxCausePages {
				rep.Truncated = true
				break
			}
			infos, next, err := pager.ListPage(ctx, tok, causesPageSize)
			if err != nil {
				return nil, err
			}
			passed := false
			for _, in := range infos {
				// Spans end before their snapshot is taken: one taken
				// before the range holds none of its spans.
				if in.TakenAt.Before(q.From) {
					passed = true
					break
				}
				add(in)
			}
			if passed || next == "" {
				break
			}
			tok = next
		}
	} else {
		infos, err := store.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			if !in.TakenAt.Before(q.From) {
				add(in)
			}
		}
	}
	for i := range rep.Groups {
		g := &rep.Groups[i]
		slices.Sort(g.durations)
		g.P50, g.P99 = percentile(g.durations, 50), percentile(g.durations, 99)
		g.durations = nil
		g.Examples = newestExamples(g.Examples)
		slices.Sort(g.Reasons)
		slices.Sort(g.Replicas)
	}
	slices.SortStableFunc(rep.Groups, func(a, b CauseGroup) int {
		switch {
		case a.Lost != b.Lost:
			return cmp.Compare(b.Lost, a.Lost)
		case a.Count != b.Count:
			return b.Count - a.Count
		}
		return strings.Compare(a.Service+"\x00"+a.Span+"\x00"+a.Cause, b.Service+"\x00"+b.Span+"\x00"+b.Cause)
	})
	return rep, nil
}

// newestExamples keeps the maxExamples newest of es, newest first.
func newestExamples(es []CauseExample) []CauseExample {
	slices.SortStableFunc(es, func(a, b CauseExample) int { return b.End.Compare(a.End) })
	return es[:min(len(es), maxExamples)]
}

// percentile returns the p-th percentile of sorted ds, by nearest rank.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (len(ds)*p + 99) / 100
	return ds[min(max(i-1, 0), len(ds)-1)]
}

// parseCausesQuery reads the query of /causes: ?since= (a Go duration,
// DefaultCausesSince when absent), or ?from= and ?to= (RFC 3339; to is now
// when absent), and the filters ?service=, ?span=, ?reason=, ?replica=.
func parseCausesQuery(v url.Values, now time.Time) (CausesQuery, error) {
	q := CausesQuery{To: now, Service: v.Get("service"), Span: v.Get("span"), Reason: v.Get("reason"), Replica: v.Get("replica")}
	for _, s := range []string{q.Service, q.Span, q.Reason, q.Replica} {
		if len(s) > maxFilterLen || !printable(s, true) {
			return CausesQuery{}, errBadFilter
		}
	}
	if t := v.Get("to"); t != "" {
		to, err := time.Parse(time.RFC3339, t)
		if err != nil {
			return CausesQuery{}, errBadRange
		}
		q.To = to
	}
	switch from, since := v.Get("from"), v.Get("since"); {
	case from != "":
		f, err := time.Parse(time.RFC3339, from)
		if err != nil {
			return CausesQuery{}, errBadRange
		}
		q.From = f
	case since != "":
		d, err := time.ParseDuration(since)
		if err != nil || d <= 0 {
			return CausesQuery{}, errBadRange
		}
		q.From = q.To.Add(-d)
	default:
		q.From = q.To.Add(-DefaultCausesSince)
	}
	if !q.From.Before(q.To) || q.To.Sub(q.From) > maxCausesRange {
		return CausesQuery{}, errBadRange
	}
	return q, nil
}

// causesPage is the causes page's data.
type causesPage struct {
	*CauseReport
	Since string // the ?since= asked for, to fill the form
}

// Link returns the causes page's URL for the report's range and filters,
// with the filter named by k set to v.
func (p causesPage) Link(k, v string) template.URL {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	if p.Since != "" {
		set("since", p.Since)
	} else {
		set("from", p.Query.From.UTC().Format(time.RFC3339))
		set("to", p.Query.To.UTC().Format(time.RFC3339))
	}
	set("service", p.Query.Service)
	set("span", p.Query.Span)
	set("reason", p.Query.Reason)
	set("replica", p.Query.Replica)
	q.Del(k)
	set(k, v)
	return template.URL("causes?" + q.Encode())
}

// Sparkline sizes, in SVG user units.
const sparkW, sparkH = 120, 24

// sparkline returns the points of an SVG polyline drawing counts.
func sparkline(counts []int) string {
	peak := 1
	for _, c := range counts {
		peak = max(peak, c)
	}
	var sb strings.Builder
	for i, c := range counts {
		x := 0.0
		if len(counts) > 1 {
			x = float64(i) * sparkW / float64(len(counts)-1)
		}
		y := sparkH - 2 - float64(c)*(sparkH-4)/float64(peak)
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%.1f,%.1f", x, y)
	}
	return sb.String()
}

func (v *viewer) causes(w http.ResponseWriter, r *http.Request) {
	q, err := parseCausesQuery(r.URL.Query(), time.Now())
	if err != nil {
		v.render(w, http.StatusBadRequest, "error.html", errorPage{Status: http.StatusBadRequest, Message: err.Error()})
		return
	}
	rep, err := Causes(r.Context(), v.store, q)
	if err != nil {
		if r.Context().Err() == nil {
			v.fail(w, r, err)
		}
		return
	}
	since := r.URL.Query().Get("since")
	if since == "" && r.URL.Query().Get("from") == "" {
		since = "1h" // DefaultCausesSince, as a person writes it
	}
	v.render(w, http.StatusOK, "causes.html", causesPage{CauseReport: rep, Since: since})
}

func (v *viewer) causesJSON(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	q, err := parseCausesQuery(r.URL.Query(), time.Now())
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	rep, err := Causes(r.Context(), v.store, q)
	if err != nil {
		if r.Context().Err() == nil {
			otel.Handle(err)
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "The snapshot store failed; see the service's logs."})
		}
		return
	}
	_ = json.NewEncoder(w).Encode(rep)
}
