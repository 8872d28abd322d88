package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

const causesUsage = `usage: otelfr causes [-store STORE] [-since DURATION | -from TIME [-to TIME]] [-service S] [-span NAME] [-reason R] [-replica R] [-json]

Prints the anomalous spans that STORE holds for the range, grouped by
service, span name and cause, the groups that lost the most time first: the
table of the viewer's /causes page.
`

// causes is `otelfr causes`.
func causes(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("otelfr causes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, causesUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	location := fs.String("store", "", "the store to read: "+storeUsage+" (default $"+bucketstore.EnvStore+")")
	since := fs.Duration("since", viewer.DefaultCausesSince, "the range: this long up to -to")
	from := fs.String("from", "", "the range's start, RFC 3339 (instead of -since)")
	to := fs.String("to", "", "the range's end, RFC 3339 (default now)")
	var q viewer.CausesQuery
	fs.StringVar(&q.Service, "service", "", "only this service (service.name)")
	fs.StringVar(&q.Span, "span", "", "only spans of this name")
	fs.StringVar(&q.Reason, "reason", "", "only spans selected for this reason (latency, error, …)")
	fs.StringVar(&q.Replica, "replica", "", "only this replica (service.instance.id, else pod or host name)")
	asJSON := fs.Bool("json", false, "print the report as JSON, as /causes.json serves it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "otelfr causes: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q\n%s", fs.Arg(0), causesUsage)
	}
	if *location == "" {
		*location = os.Getenv(bucketstore.EnvStore)
	}
	if *location == "" {
		return usageError("no store: give -store DIR or -store URL, or set %s", bucketstore.EnvStore)
	}
	q.To = time.Now()
	if *to != "" {
		t, err := time.Parse(time.RFC3339, *to)
		if err != nil {
			return usageError("-to: want an RFC 3339 time: %v", err)
		}
		q.To = t
	}
	q.From = q.To.Add(-*since)
	if *from != "" {
		t, err := time.Parse(time.RFC3339, *from)
		if err != nil {
			return usageError("-from: want an RFC 3339 time: %v", err)
		}
		q.From = t
	}
	if !q.From.Before(q.To) {
		return usageError("the range is empty: -since must be positive, -from before -to")
	}

	store, closeStore, _, err := openStore(ctx, *location)
	if err != nil {
		fmt.Fprintf(stderr, "otelfr causes: %s\n", describeOpenError(*location, err))
		return exitError
	}
	defer closeStore()
	rep, err := viewer.Causes(ctx, store, q)
	if err != nil {
		fmt.Fprintf(stderr, "otelfr causes: reading the store: %v\n", err)
		return exitError
	}
	if *asJSON {
		return writeJSON(stdout, stderr, rep)
	}
	printCauses(stdout, rep)
	return exitOK
}

// printCauses prints a report as a table, one group a line, with the
// newest example's snapshot and span for `otelfr analyze -store`.
func printCauses(w io.Writer, rep *viewer.CauseReport) {
	const layout = "2006-01-02 15:04:05Z07:00"
	fmt.Fprintf(w, "%d anomalous spans from %s to %s in %d groups, from %d snapshots read\n",
		rep.Anomalies, rep.Query.From.UTC().Format(layout), rep.Query.To.UTC().Format(layout), len(rep.Groups), rep.Snapshots)
	if rep.Truncated {
		fmt.Fprintln(w, "the store holds older snapshots in the range than were read: the oldest are left out")
	}
	if len(rep.Groups) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCOUNT\tLOST\tP50\tP99\tREPLICAS\tLAST SEEN\tSERVICE\tSPAN\tCAUSE\tEXAMPLE")
	for _, g := range rep.Groups {
		ex := ""
		if len(g.Examples) > 0 {
			ex = g.Examples[0].Snapshot + " --span " + g.Examples[0].SpanID
		}
		fmt.Fprintf(tw, "%d\t%v\t%v\t%v\t%d\t%s\t%s\t%s\t%s\t%s\n", g.Count, round(g.Lost), round(g.P50), round(g.P99),
			len(g.Replicas), g.LastSeen.UTC().Format(layout), printable(orDash(g.Service)), printable(g.Span),
			printable(g.Cause), printable(ex))
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
