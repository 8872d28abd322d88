package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `usage:
  otelfr analyze FILE                    list the spans and tasks in a snapshot
  otelfr analyze DIR [--span ID]         a disk ring (otelfr.WithDisk): its window, the crash output and
                                         the spans open at its end (a crash's ring: those open at the crash)
  otelfr analyze FILE --span ID [--json] diagnose a span (ID: SPAN or TRACE:SPAN, hex)
  otelfr analyze -store STORE SNAPSHOT [--span ID] [--json]
                                         the same for a snapshot in a store (a directory or a bucket URL)
  otelfr analyze FILE --span ID --profile KIND -o OUT
                                         write the span's block, net, syscall or sched profile (pprof)
  otelfr serve [-store STORE] [-addr HOST:PORT] [-token T | -basic-auth USER:PASSWORD]
                                         serve the viewer over a store: one viewer for a fleet
  otelfr causes [-store STORE] [-since 1h] [-service S] [-span NAME] [-reason R] [-replica R] [-json]
                                         the anomalies of a range grouped by service, span and cause
`

// run is the command, with its arguments (without the program name) and
// streams; it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "analyze":
		return analyze(args[1:], stdin, stdout, stderr)
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serve(ctx, args[1:], stderr)
	case "causes":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return causes(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "otelfr: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

func analyze(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("otelfr analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage+"\nflags:\n")
		fs.PrintDefaults()
	}
	spanArg := fs.String("span", "", "the span to diagnose: its ID (16 hex digits) or TRACE:SPAN")
	location := fs.String("store", "", "read the snapshot of this ID from the store: "+storeUsage)
	asJSON := fs.Bool("json", false, "print JSON")
	episodes := fs.Int("episodes", 5, "how many blocking episodes to show")
	profileKind := fs.String("profile", "", "write the span's profile of this kind instead of its diagnosis: block, net, syscall or sched (pprof format, for go tool pprof; needs --span and -o)")
	out := fs.String("o", "", "with --profile, the file to write the profile to (- for standard output)")
	programPaths := fs.String("program", "", "comma-separated import paths of the traced program's own code, whose frames the diagnosis names (default: code outside the module cache)")

	// The flag package stops at the first argument that is not a flag;
	// parse again after each so that flags may follow FILE.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	what := "FILE"
	if *location != "" {
		what = "SNAPSHOT"
	}
	if len(files) != 1 {
		fmt.Fprintf(stderr, "otelfr analyze: want one %s, have %d\n%s", what, len(files), usage)
		return exitUsage
	}
	file := files[0]
	src := source{name: file, list: "otelfr analyze " + file}
	if *location != "" {
		if !snapstore.ValidID(file) {
			fmt.Fprintf(stderr, "otelfr analyze: %s is not a snapshot ID\n", printable(file))
			return exitUsage
		}
		src = source{name: "snapshot " + file, list: "otelfr analyze -store " + shellQuote(*location) + " " + file}
	}

	var kind analysis.ProfileKind
	if *profileKind != "" {
		var err error
		if kind, err = analysis.ParseProfileKind(*profileKind); err != nil {
			fmt.Fprintf(stderr, "otelfr analyze: --profile: %v\n", err)
			return exitUsage
		}
		if *spanArg == "" || *out == "" {
			fmt.Fprintf(stderr, "otelfr analyze: --profile needs --span and -o FILE\n")
			return exitUsage
		}
	}
	var opts []analysis.Option
	if *programPaths != "" {
		opts = append(opts, analysis.WithProgram(strings.Split(*programPaths, ",")...))
	}

	var span analysis.Span
	if *spanArg != "" {
		var err error
		if span, err = parseSpanID(*spanArg); err != nil {
			fmt.Fprintf(stderr, "otelfr analyze: --span: %v\n", err)
			return exitUsage
		}
	}

	var data []byte
	var err error
	if *location != "" {
		var info snapstore.Info
		if data, info, err = readSnapshot(*location, file); err != nil {
			fmt.Fprintf(stderr, "otelfr: %s\n", err)
			return exitError
		}
		span = storedSpan(info, span)
	} else if isDir(file) {
		var r ringReport
		if data, r, err = readRing(file); err != nil {
			fmt.Fprintf(stderr, "otelfr: %v\n", err)
			return exitError
		}
		src.name = "disk ring " + file
		if *spanArg == "" {
			if r.OpenSpans, err = analysis.OpenSpans(data); err != nil {
				return fail(stderr, src, span, err)
			}
			if *asJSON {
				return writeJSON(stdout, stderr, r)
			}
			printRing(stdout, r)
			return exitOK
		}
	} else if data, err = readFile(file, stdin); err != nil {
		fmt.Fprintf(stderr, "otelfr: %v\n", err)
		return exitError
	}
	if *spanArg == "" {
		infos, err := analysis.Spans(data)
		if err != nil {
			return fail(stderr, src, span, err)
		}
		if *asJSON {
			return writeJSON(stdout, stderr, infos)
		}
		printSpans(stdout, src.name, infos)
		return exitOK
	}
	if kind != "" {
		return writeProfile(stderr, stdout, *out, data, src, span, kind, opts)
	}
	d, err := analysis.Analyze(data, span, append(opts, analysis.WithTopEpisodes(*episodes))...)
	if err != nil {
		return fail(stderr, src, span, err)
	}
	if *asJSON {
		return writeJSON(stdout, stderr, d)
	}
	printDiagnosis(stdout, d)
	return exitOK
}

// writeProfile writes the span's profile of kind to the file out ("-" for
// stdout), whole or not at all.
func writeProfile(stderr, stdout io.Writer, out string, data []byte, src source, span analysis.Span, kind analysis.ProfileKind, opts []analysis.Option) int {
	var buf bytes.Buffer
	if err := analysis.WriteProfile(&buf, data, span, kind, opts...); err != nil {
		return fail(stderr, src, span, err)
	}
	if out == "-" {
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			fmt.Fprintf(stderr, "otelfr: %v\n", err)
			return exitError
		}
		return exitOK
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintf(stderr, "otelfr: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stderr, "otelfr: wrote the %s profile of span %s to %s (go tool pprof %s)\n", kind, span.SpanID, printable(out), shellQuote(out))
	return exitOK
}

// parseSpanID reads SPAN or TRACE:SPAN in hex.
func parseSpanID(s string) (analysis.Span, error) {
	var span analysis.Span
	tr, sp, both := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	if !both {
		tr, sp = "", tr
	}
	if len(sp) != 2*len(span.SpanID) {
		return span, fmt.Errorf("want a span ID of 16 hex digits, or TRACE:SPAN; have %q", s)
	}
	if _, err := hex.Decode(span.SpanID[:], []byte(sp)); err != nil {
		return span, fmt.Errorf("span ID %q: %v", sp, err)
	}
	if both {
		if len(tr) != 2*len(span.TraceID) {
			return span, fmt.Errorf("want a trace ID of 32 hex digits before the colon; have %q", tr)
		}
		if _, err := hex.Decode(span.TraceID[:], []byte(tr)); err != nil {
			return span, fmt.Errorf("trace ID %q: %v", tr, err)
		}
	}
	if !span.SpanID.IsValid() {
		return span, errors.New("the span ID is zero")
	}
	return span, nil
}

func readFile(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

// source names what analyze reads: name, a file or a stored snapshot, for
// messages, and list, the command that lists its spans.
type source struct {
	name, list string
}

// shellQuote quotes s for a POSIX shell when it holds more than letters,
// digits and the punctuation of paths: a bucket URL's query holds & and ?.
func shellQuote(s string) string {
	plain := s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._-:,+=@%", r))
	})
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// readSnapshot reads the snapshot id from the store at location.
func readSnapshot(location, id string) ([]byte, snapstore.Info, error) {
	ctx := context.Background()
	store, closeStore, shown, err := openStore(ctx, location)
	if err != nil {
		return nil, snapstore.Info{}, errors.New(describeOpenError(location, err))
	}
	defer closeStore()
	r, info, err := store.Open(ctx, id)
	if errors.Is(err, snapstore.ErrNotFound) {
		return nil, info, fmt.Errorf("snapshot %s is not in %s: unknown, removed by retention, or not yet uploaded from the replica that took it", id, printable(shown))
	}
	if err != nil {
		return nil, info, fmt.Errorf("snapshot %s: %s", id, printable(err.Error()))
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, info, fmt.Errorf("snapshot %s: %s", id, printable(err.Error()))
	}
	return data, info, nil
}

// storedSpan completes span with what the store recorded of it, as the
// viewer does: its trace ID when not given, its name and interval, which
// find a span that the trace names by neither task nor log.
func storedSpan(info snapstore.Info, span analysis.Span) analysis.Span {
	for _, ref := range info.Spans {
		if ref.SpanID != span.SpanID.String() {
			continue
		}
		tid, err := trace.TraceIDFromHex(ref.TraceID)
		if span.TraceID.IsValid() && (err != nil || tid != span.TraceID) {
			continue // another trace's span of the same ID
		}
		span.TraceID = tid
		span.Name, span.Start, span.End = ref.Name, ref.Start, ref.End
	}
	return span
}

// fail reports an analysis error in terms of the command.
func fail(stderr io.Writer, src source, span analysis.Span, err error) int {
	// The parser's messages can quote the file's bytes.
	file, msg := printable(src.name), printable(err.Error())
	switch {
	case errors.Is(err, analysis.ErrMalformed):
		fmt.Fprintf(stderr, "otelfr: %s: a corrupt or truncated Go execution trace: %s\n", file, msg)
	case errors.Is(err, analysis.ErrNotTrace):
		fmt.Fprintf(stderr, "otelfr: %s is not a Go execution trace\n", file)
	case errors.Is(err, analysis.ErrUnsupportedVersion):
		fmt.Fprintf(stderr, "otelfr: %s: a Go execution trace this otelfr cannot read: %s\n", file, msg)
	case errors.Is(err, analysis.ErrSpanNotFound):
		fmt.Fprintf(stderr, "otelfr: span %s is not in the window of %s (run `%s` to list the spans it holds)\n",
			span.SpanID, file, printable(src.list))
	default:
		fmt.Fprintf(stderr, "otelfr: %s: %s\n", file, msg)
	}
	return exitError
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "otelfr: %v\n", err)
		return exitError
	}
	return exitOK
}

func printSpans(w io.Writer, file string, infos []analysis.SpanInfo) {
	fmt.Fprintf(w, "%s: %d spans and tasks\n", printable(file), len(infos))
	if len(infos) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRACE ID\tSPAN ID\tNAME\tSTART\tDURATION\tSTATUS\tTASK\tGOROUTINE")
	for _, in := range infos {
		tid, sid := "-", "-"
		if in.SpanID.IsValid() {
			sid = in.SpanID.String()
			tid = in.TraceID.String()
		}
		name := printable(in.Name)
		if name == "" {
			name = "-"
		}
		start, dur := "-", "-"
		if !in.Start.IsZero() {
			start = in.Start.Format(time.RFC3339Nano)
		}
		if d := in.Duration(); d > 0 || (!in.Start.IsZero() && !in.End.IsZero()) {
			dur = round(d).String()
		}
		task := "-"
		if in.Task != 0 {
			task = fmt.Sprint(in.Task)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", tid, sid, name, start, dur, in.Status, task, in.Goroutine)
	}
	tw.Flush()
}

// maxFrames bounds the frames printed per stack.
const maxFrames = 10

func printDiagnosis(w io.Writer, d *analysis.Diagnosis) {
	name := d.Span.Name
	if name == "" {
		name = "(unnamed)"
	}
	fmt.Fprintf(w, "span %s %s", d.Span.SpanID, strconv.Quote(name))
	if d.Span.TraceID.IsValid() {
		fmt.Fprintf(w, " in trace %s", d.Span.TraceID)
	}
	fmt.Fprintf(w, ": %s\n", d.Status)
	fmt.Fprintf(w, "verdict: %s\n\n", printable(d.Verdict))

	fmt.Fprintf(w, "interval: %s, %s", d.Start.Format(time.RFC3339Nano), round(d.Duration))
	if d.Task != 0 {
		fmt.Fprintf(w, ", task %d", d.Task)
	} else {
		fmt.Fprint(w, ", no task (found by goroutine)")
	}
	if d.GOMAXPROCS > 0 {
		fmt.Fprintf(w, ", GOMAXPROCS %d", d.GOMAXPROCS)
	}
	p := d.Parsed
	fmt.Fprintf(w, "\nparsed %d of %d generations (%s of %s)\n\n", p.Generations, p.TotalGenerations, size(p.Bytes), size(p.TotalBytes))

	fmt.Fprintf(w, "goroutines (%d):\n", len(d.Goroutines))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  GOROUTINE\tROLE\tTIME\tBUCKETS\tENTRY")
	for _, g := range d.Goroutines {
		entry := printable(g.Entry)
		if entry == "" {
			entry = "-"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", g.ID, g.Role, round(g.Time), buckets(g), entry)
	}
	tw.Flush()

	gc := d.GC
	fmt.Fprintf(w, "\nGC: mark phase overlap %s (%d cycles), stop-the-world overlap %s (%d), assist %s\n",
		round(gc.MarkOverlap), gc.Cycles, round(gc.STWOverlap), gc.STWs, round(gc.Assist))

	if len(d.Episodes) == 0 {
		return
	}
	fmt.Fprintf(w, "\ntop blocking episodes:\n")
	for i, ep := range d.Episodes {
		fmt.Fprintf(w, "%2d. goroutine %d %s", i+1, ep.Goroutine, ep.State)
		if ep.Reason != "" {
			fmt.Fprintf(w, " (%s)", printable(ep.Reason))
		}
		fmt.Fprintf(w, " for %s at +%s\n", round(ep.Duration), round(ep.Start.Sub(d.Start)))
		printStack(w, ep.Stack)
		if ep.Waker != nil {
			fmt.Fprintf(w, "    woken by goroutine %d:\n", ep.Waker.Goroutine)
			printStack(w, ep.Waker.Stack)
		}
	}
}

// buckets lists a goroutine's nonzero buckets, largest first, with their
// share of its time.
func buckets(g analysis.Goroutine) string {
	type bucket struct {
		s analysis.State
		d time.Duration
	}
	var bs []bucket
	for s, d := range g.Buckets {
		if d > 0 {
			bs = append(bs, bucket{analysis.State(s), d})
		}
	}
	slices.SortStableFunc(bs, func(a, b bucket) int { return cmp.Compare(b.d, a.d) })
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = fmt.Sprintf("%s %s (%.0f%%)", b.s, round(b.d), 100*float64(b.d)/float64(g.Time))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func printStack(w io.Writer, frames []analysis.Frame) {
	for i, f := range frames {
		if i == maxFrames {
			fmt.Fprintf(w, "      ... %d more frames\n", len(frames)-maxFrames)
			return
		}
		fmt.Fprintf(w, "      %s\n          %s:%d\n", printable(f.Func), printable(f.File), f.Line)
	}
}

// printable returns s, a string from the trace or the command line, as it
// may reach a terminal: unchanged when it holds only printable characters
// other than `"` and `\`, else quoted with strconv.Quote, as the diagnosis
// quotes the span's name. A task, span or function name, a wait reason or
// a file name then cannot recolour the terminal, ring its bell, move the
// cursor or forge a line or a column of a table; the quotes tell an
// escaped string from one that only looks like it.
func printable(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}

// round shortens a duration for reading: microseconds below a second.
func round(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// size formats a byte count in KiB or MiB.
func size(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
