// Package viewer serves the pages a slow span in Jaeger links to: for each
// snapshot, what the span's goroutines were doing, before anyone opens the
// whole trace in `go tool trace`.
//
// [NewHandler] serves, under the prefix it is mounted at:
//
//	/                  index: snapshots newest first, with the replica that took each, the spans it covers and their verdicts
//	/?service=S&instance=I  the index of one service's snapshots, or one instance's (either parameter alone, or both)
//	/?page=TOKEN       an older page of the index, over a store that pages
//	/ID                snapshot page: window, recorder settings, replica, anomalous spans with their trace IDs, download, `go tool trace` command
//	/ID?span=SPANID    span page: the diagnosis and a timeline with one lane per goroutine (any trace parameter is ignored)
//	/ID?trace=TRACEID  redirects to the span page of the trace's anomalous span when the snapshot holds one; otherwise the snapshot page, listing only that trace's spans
//	/ID.trace          the raw execution trace (and /ID for clients that do not ask for HTML)
//	/ID.json           the snapshot's snapstore.Info as JSON
//	/ID.pprof?span=SPANID&kind=KIND  the span's profile in pprof's format, for `go tool pprof`: KIND is block, net, syscall or sched (analysis.WriteProfile), linked from the span page
//	/snapshots.json    the newest snapshots (up to [WithMaxList]) as JSON, filtered by ?service= and ?instance= as the index; / too, for clients that do not ask for HTML
//	/causes            the anomalies of a range (?since=1h, the default, or ?from=&to= in RFC 3339) grouped by service, span name and cause, filtered by ?service=, ?span=, ?reason=, ?replica=
//	/causes.json       the same as a [CauseReport] in JSON
//	POST /             takes a snapshot now, with [WithTrigger]
//
// A Jaeger link pattern on a span tag can read the span's tags and its
// trace (#{trace.traceID}), not the span's ID: the span's ID reaches it as
// the tag otelfr.snapshot.span_id, and the link is
// /ID?span=#{otelfr.snapshot.span_id}&trace=#{trace.traceID}. An empty span
// parameter counts as none.
//
// # A fleet's snapshots
//
// Over a store that a fleet shares (package snapstore/bucketstore, served
// by `otelfr serve`), each snapshot names the replica that took it in
// snapstore.Info.Resource: the index, snapshot and span pages show its
// service, instance and host or pod, and the index filters on the service
// name and instance ID (service.name, service.instance.id), with links to
// those it read and a form (a GET: the pages' Content-Security-Policy
// allows forms to submit to the viewer only). A snapshot still in its
// replica's spool (Info.Pending, seen only by that replica's own store) is
// marked pending upload. A central viewer does not find a snapshot before
// its upload: its 404 page says that the snapshot may not be uploaded yet,
// and to reload in a while.
//
// The span page diagnoses the span from the snapshot when it is asked
// for, whether or not a verdict was stored with the span: a snapshot saved
// without a diagnoser, or whose spans the store does not list, still
// explains any span it holds. A stored verdict leads the page, as it was
// made from the span itself and names the error of a failed one; the
// viewer's own verdict is shown beside it when they differ.
//
// # Causes
//
// The causes page groups a range's anomalous spans, across every replica
// of a shared store, by service, span name and cause: the diagnosis's
// grouping key, snapstore.SpanRef.Cause (analysis.Diagnosis.Cause says
// how it is formed). Each group has its count, time lost (total, p50,
// p99), first and last seen, replicas, links to its newest span pages and
// a trend as an SVG sparkline; the groups that lost the most time come
// first. [Causes] computes it, for the page and for `otelfr causes`. Over a
// store that pages it reads pages of 1,000 snapshots until one is older
// than the range's start, at most 50 of them. These two routes come before
// the snapshot routes: a snapshot whose ID were "causes" (the processor's
// IDs never are) has its trace at /causes.trace only.
//
// Everything works offline: pages are rendered on the server with
// html/template, the timeline is SVG, the stylesheet is embedded, and no
// script runs. It is the one HTTP surface over a snapstore.Store, and lives apart from
// package exporter so that the execution trace parser (package analysis)
// stays out of programs that only record.
//
// The routes that serve a page to browsers and data to other clients
// (/ and /ID, with any query) send Vary: Accept, and neither answer is
// cached for long: pages are not stored, the data at /ID is revalidated.
// Only /ID.trace, whose content never changes, may be cached for a year.
//
// # Usage
//
//	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(store)))
//
// # Security
//
// A snapshot holds stack traces, task names and runtime/trace log
// messages; every page says so in its footer. Serve the viewer on loopback
// or with [WithBearerToken] or [WithBasicAuth], which protect every route,
// the pages and the data alike. Every response carries
// a Content-Security-Policy that lets no script run and
// X-Content-Type-Options: nosniff.
//
// # Limits
//
// A span page reads its whole snapshot and analyses part of it: at most two
// are computed at once (other requests wait), and the last 32 are kept, as a
// snapshot never changes.
//
// Over a store that pages (snapstore.Pager, as bucketstore.Store does), the
// index reads one page of 50 snapshots, one listing request and 50 reads
// however many the bucket holds, and links to the next with ?page=, the
// store's opaque token; it never lists the whole store. A filtered index
// reads further pages until 50 snapshots match or it has read 10 pages
// (500 snapshots), then links to the next page, so that a page may show
// fewer than 50, or none, while older ones match; it says how many it read.
// The services and instances offered as filters are those of the
// snapshots read. A token that the store refuses, while the store answers
// otherwise, is answered 400. Over a store that does not page (DirStore),
// the index lists the newest 200 snapshots that match; snapshots.json lists
// more. snapshots.json reads a store that pages by pages of up to 1,000
// until it has [WithMaxList] snapshots that match or has read the last, and
// ignores ?page=.
package viewer
