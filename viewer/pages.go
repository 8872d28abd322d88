package viewer

import (
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

var funcs = template.FuncMap{
	// Every page sits one level under the handler's root, so "./" is the
	// root, wherever the handler is mounted.
	"base":    func() string { return "./" },
	"int64":   func(n uint64) int64 { return int64(n) },
	"nonzero": nonzero,
	"class":   stateClass,
	"ms":      func(d time.Duration) string { return fmtDuration(d) },
	"bytes":   fmtBytes,
	"time":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 MST") },
	"pct": func(part, whole time.Duration) string {
		if whole <= 0 {
			return "0%"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(part)/float64(whole))
	},
	"replica":        replica,
	"maxFilterPages": func() int { return maxFilterPages },
	"place":          place,
	"fleet":          func(r snapstore.Resource) bool { return r != snapstore.Resource{} },
	"spark":          sparkline,
}

// replica describes the process that took a snapshot, from its resource:
// its service, version and namespace, instance, and where it ran; "" for
// the zero Resource of a store that does not record it.
func replica(r snapstore.Resource) string {
	var parts []string
	if svc := r.ServiceName; svc != "" {
		if r.ServiceVersion != "" {
			svc += " " + r.ServiceVersion
		}
		if r.ServiceNamespace != "" {
			svc += " (namespace " + r.ServiceNamespace + ")"
		}
		parts = append(parts, svc)
	}
	if r.ServiceInstanceID != "" {
		parts = append(parts, "instance "+r.ServiceInstanceID)
	}
	if p := place(r); p != "" {
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// place says where a snapshot's process ran: its Kubernetes pod, else its
// host; "" when the resource names neither.
func place(r snapstore.Resource) string {
	switch {
	case r.K8sPodName != "" && r.K8sNamespaceName != "":
		return "pod " + r.K8sNamespaceName + "/" + r.K8sPodName
	case r.K8sPodName != "":
		return "pod " + r.K8sPodName
	case r.HostName != "":
		return "host " + r.HostName
	}
	return ""
}

type bucket struct {
	State    analysis.State
	Duration time.Duration
}

// nonzero returns the non-empty buckets, largest first.
func nonzero(b analysis.Buckets) []bucket {
	var out []bucket
	for s, d := range b {
		if d > 0 {
			out = append(out, bucket{analysis.State(s), d})
		}
	}
	slices.SortStableFunc(out, func(a, b bucket) int { return cmp.Compare(b.Duration, a.Duration) })
	return out
}

// stateClass is the CSS class suffix of a state: its name without the
// "blocked." prefix or underscores.
func stateClass(s analysis.State) string {
	return strings.ReplaceAll(strings.TrimPrefix(s.String(), "blocked."), "_", "")
}

func fmtDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

type errorPage struct {
	Status  int
	Message string
}

type snapshotPage struct {
	Info        snapstore.Info
	Window      time.Duration
	DownloadURL string // absolute, for the command line
	FileName    string
	// Trace, when not empty, narrows Spans to that trace's; Others counts
	// the spans of other traces left out.
	Trace  string
	Spans  []snapstore.SpanRef
	Others int
	// Crash is set on a crash snapshot's page, with Open, the spans open
	// when the process died (analysis.OpenSpans), or OpenErr, why they
	// could not be read.
	Crash   bool
	Open    []analysis.SpanInfo
	OpenErr string
}

// newSnapshotPage describes the snapshot, with its anomalous spans, or
// only those of the trace traceHex (lowercase hex) when not empty: a
// link from one trace must not list another's spans as if they were its.
func newSnapshotPage(info snapstore.Info, traceHex string, r *http.Request) snapshotPage {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// StripPrefix leaves the original path in RequestURI.
	dir := path.Dir(strings.SplitN(r.RequestURI, "?", 2)[0])
	if !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	p := snapshotPage{
		Info:        info,
		Window:      info.WindowEnd.Sub(info.WindowStart),
		DownloadURL: scheme + "://" + r.Host + dir + info.ID + ".trace",
		FileName:    "otelfr-" + info.ID + ".trace",
		Trace:       traceHex,
		Spans:       info.Spans,
	}
	if traceHex != "" {
		p.Spans = nil
		for _, s := range info.Spans {
			if strings.EqualFold(s.TraceID, traceHex) {
				p.Spans = append(p.Spans, s)
			}
		}
		p.Others = len(info.Spans) - len(p.Spans)
	}
	return p
}

// spanPage is a span's diagnosis, computed from the snapshot when the page
// is asked for, whether or not a verdict was stored with the span.
type spanPage struct {
	Info   snapstore.Info
	SpanID string
	Ref    *snapstore.SpanRef
	Diag   *analysis.Diagnosis
	// Stored is the verdict stored with the span, made when it ended from
	// the span itself: it leads with the error of a failed span, which the
	// trace does not hold, so the page leads with it, and shows Diag's
	// own verdict beside it when they differ. Empty when none was stored.
	Stored   string
	Err      string
	Timeline template.HTML
	// Profiles are the kinds of the span's profiles, each downloaded from
	// ID.pprof?span=SPANID&kind=KIND.
	Profiles []analysis.ProfileKind
}

func newSpanPage(info snapstore.Info, sid trace.SpanID, data []byte) spanPage {
	p := spanPage{Info: info, SpanID: sid.String(), Profiles: analysis.ProfileKinds()}
	for i := range info.Spans {
		if info.Spans[i].SpanID == sid.String() {
			ref := info.Spans[i]
			p.Ref, p.Stored = &ref, ref.Verdict
		}
	}
	d, err := analysis.Analyze(data, spanOf(info, sid))
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.Diag = d
	p.Timeline = renderTimeline(d)
	return p
}
