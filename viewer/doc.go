// Package viewer serves the pages a slow span in Jaeger links to: for each
// snapshot, what the span's goroutines were doing, before anyone opens the
// whole trace in `go tool trace`.
//
// [NewHandler] serves, under the prefix it is mounted at:
//
//	/                  index: snapshots newest first, with the spans each covers and their verdicts
//	/ID                snapshot page: window, recorder settings, anomalous spans with their trace IDs, download, `go tool trace` command
//	/ID?span=SPANID    span page: the diagnosis and a timeline with one lane per goroutine (any trace parameter is ignored)
//	/ID?trace=TRACEID  redirects to the span page of the trace's anomalous span when the snapshot holds one; otherwise the snapshot page, listing only that trace's spans
//	/ID.trace          the raw execution trace (and /ID for clients that do not ask for HTML)
//	/ID.json           the snapshot's snapstore.Info as JSON
//	/snapshots.json    the newest snapshots (up to [WithMaxList]) as JSON; / too, for clients that do not ask for HTML
//	POST /             takes a snapshot now, with [WithTrigger]
//
// A Jaeger link pattern on a span tag can read the span's tags and its
// trace (#{trace.traceID}), not the span's ID: the span's ID reaches it as
// the tag otelfr.snapshot.span_id, and the link is
// /ID?span=#{otelfr.snapshot.span_id}&trace=#{trace.traceID}. An empty span
// parameter counts as none.
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
// snapshot never changes. The index page lists the newest 200 snapshots;
// snapshots.json lists more.
package viewer
