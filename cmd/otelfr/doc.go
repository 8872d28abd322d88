// Command otelfr reads snapshots of Go's flight recorder, as otelfr stores
// and serves them, and explains slow spans from them.
//
// Usage:
//
//	otelfr analyze FILE                  list the spans and tasks the snapshot shows
//	otelfr analyze FILE --span ID        diagnose a span
//	otelfr analyze FILE --span ID --json the diagnosis as JSON
//
// ID is a span ID, 16 hex digits, or TRACE:SPAN with the 32-digit trace ID
// first. FILE "-" reads the snapshot from standard input. The diagnosis
// starts with a one-line verdict, then the time of each goroutine that
// worked for the span split by state, the garbage collector's overlap with
// the span, and the longest blocking episodes with their stacks and the
// goroutines that ended them. See package analysis for what each part
// means.
//
// A snapshot's strings are the traced program's: a task, span or function
// name can hold any bytes. The text output prints one as it is when it holds
// only printable characters other than quotes and backslashes, else in Go's
// quoted form ("a\x1b[31m"), so that no name can send the terminal control
// codes or forge a line; --json keeps the strings as they are, JSON-escaped.
//
// Install it with
//
//	go install github.com/otelfr/otel-flightrecorder/cmd/otelfr@latest
//
// Exit status: 0 on success, 1 when the file cannot be read, is not a Go
// execution trace, comes from a Go version the analysis does not support, or
// does not hold the span; 2 for a usage error.
package main
