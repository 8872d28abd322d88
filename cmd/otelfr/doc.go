// Command otelfr reads snapshots of Go's flight recorder, as otelfr stores
// and serves them, and explains slow spans from them; `otelfr serve` is one
// viewer for a fleet's snapshots.
//
// Usage:
//
//	otelfr analyze FILE                  list the spans and tasks the snapshot shows
//	otelfr analyze FILE --span ID        diagnose a span
//	otelfr analyze FILE --span ID --json the diagnosis as JSON
//	otelfr analyze -store STORE SNAPSHOT [--span ID] [--json]
//	                                     the same for the snapshot of that ID in a store
//	otelfr analyze FILE --span ID --profile KIND -o OUT
//	                                     write the span's profile of KIND (block, net,
//	                                     syscall, sched) in pprof's format, for go tool pprof
//	otelfr serve [-store STORE] [-addr HOST:PORT] [-token TOKEN | -basic-auth USER:PASSWORD | -insecure-no-auth]
//	                                     serve the viewer's pages over a store
//	otelfr causes [-store STORE] [-since 1h | -from TIME [-to TIME]] [-service S] [-span NAME] [-reason R] [-replica R] [-json]
//	                                     the anomalies of a range grouped by service, span and cause
//
// causes prints the table of the viewer's /causes page (package viewer's
// Causes, one implementation for both): the anomalous spans whose end falls
// in the range, grouped by service, span name and the diagnosis's cause,
// with their count, time lost (total, p50, p99), replicas, last seen and
// the newest example, for `otelfr analyze -store STORE SNAPSHOT --span ID`.
// Like serve, it reads OTELFR_STORE when -store is not given.
//
// ID is a span ID, 16 hex digits, or TRACE:SPAN with the 32-digit trace ID
// first. FILE "-" reads the snapshot from standard input. The diagnosis
// starts with a one-line verdict, then the time of each goroutine that
// worked for the span split by state, the garbage collector's overlap with
// the span, and the longest blocking episodes with their stacks and the
// goroutines that ended them. See package analysis for what each part
// means.
//
// A profile is `go tool trace`'s profile of that kind cut to the span: the
// time its goroutines spent blocked on synchronization (block), on the
// network (net), in system calls (syscall) or waiting for a P (sched), by
// stack. -program PATH,... names the import paths of the traced program's
// own code, whose frames the verdict names; by default it is the code
// outside the module cache.
//
// A snapshot's strings are the traced program's: a task, span or function
// name can hold any bytes. The text output prints one as it is when it holds
// only printable characters other than quotes and backslashes, else in Go's
// quoted form ("a\x1b[31m"), so that no name can send the terminal control
// codes or forge a line; --json keeps the strings as they are, JSON-escaped.
//
// # Stores
//
// STORE is a location as package snapstore/bucketstore's OpenStore reads
// it, and as OTELFR_STORE names it for the programs that record: a
// directory, or a bucket URL with a scheme (s3://BUCKET?region=REGION,
// s3://BUCKET?endpoint=http://HOST:PORT&region=REGION&use_path_style=true
// for an S3-compatible server, gs://BUCKET, azblob://CONTAINER,
// file:///DIR). otelfr only reads a store: a
// directory is opened read-only (snapstore.WithReadOnly), so that it never
// removes a snapshot, an orphan or a temporary file from under the process
// that writes there; a bucket is opened without a spool. Credentials come
// from each cloud's usual sources, for S3 the AWS_* environment variables,
// the shared config files or the instance's role, never from the URL.
//
// The command links the drivers of s3://, gs:// (Google Cloud Storage),
// azblob:// (Azure Blob Storage, with AZURE_STORAGE_ACCOUNT and the usual
// Azure credentials) and file://. A scheme that is not linked fails at
// start, naming the ones that are.
//
// analyze takes -store explicitly: it does not read OTELFR_STORE, which
// would turn its FILE argument into a snapshot ID wherever the variable is
// set for the programs that record.
//
// # Serve
//
// otelfr serve serves, for every snapshot in STORE, every replica's in a
// shared bucket, the pages and data of package viewer under /snapshots/:
// the index (filtered with ?service=NAME&instance=ID, paged over a
// bucket), each snapshot's page, and each span's page, which diagnoses the
// span from the snapshot when it is asked for, whether or not a verdict
// was stored with it. / redirects to /snapshots/. The Jaeger link pattern
// of deploy/jaeger/ui.json points at the default address:
// http://localhost:8081/snapshots/ID?span=SPANID&trace=TRACEID.
//
// Flags, and the environment variables read when they are not given:
//
//	-store STORE            the store; default $OTELFR_STORE. Without either, serve stops with a usage error:
//	                        a central viewer has no store of its own to default to.
//	-addr HOST:PORT         where to listen; default 127.0.0.1:8081. Port 0 picks a free port.
//	-token TOKEN            require "Authorization: Bearer TOKEN"; default $OTELFR_SERVE_TOKEN
//	-basic-auth USER:PASS   require HTTP basic credentials, which browsers ask for; default $OTELFR_SERVE_BASIC_AUTH
//	-insecure-no-auth       serve a non-loopback address without authentication
//
// The variables keep a secret out of the process list. A flag wins over
// both variables; giving both kinds of authentication is a usage error.
// The authentication protects every route under /snapshots/, pages and
// data alike. Without it, serve listens only on a loopback address
// (127.0.0.0/8, ::1, localhost): on any other, it refuses to start unless
// given -insecure-no-auth, for a server behind a reverse proxy that
// authenticates every request (an OAuth2 proxy, the ingress's). Such a
// proxy should forward /snapshots/ and /healthz; the snapshot page's
// download command is built from the request's Host header.
//
// GET /healthz answers 200 "ok" when the store answers its cheapest
// listing (one snapshot of a bucket's first page, or a directory's
// listing) within 2 seconds, and 503 with the store's error otherwise. It
// needs no authentication, for load balancers and orchestrators, and shows
// no snapshot. serve logs when the store starts failing and when it
// recovers.
//
// Once listening, serve logs one line to standard error, which scripts
// may read for the address (with port 0, the port picked):
//
//	otelfr serve: serving http://127.0.0.1:8081/snapshots/ from STORE
//
// STORE there is the directory made absolute, or the URL. On SIGINT or
// SIGTERM, serve stops accepting connections, gives the requests in flight
// 5 seconds to finish, closes the connections still busy then, closes the
// store and exits 0. Its server sets the examples' limits: headers within
// 5 s, the request within 10 s, the response within a minute, idle
// connections closed after a minute, headers at most 64 KiB.
//
// Install it with
//
//	go install github.com/otelfr/otel-flightrecorder/cmd/otelfr@latest
//
// Exit status: 0 on success, and for serve after a signal; 1 when the
// file or the snapshot cannot be read, is not a Go execution trace, comes
// from a Go version the analysis does not support, or does not hold the
// span, and when serve cannot open its store or listen; 2 for a usage
// error.
package main
