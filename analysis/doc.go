// Package analysis explains a slow span from a snapshot of Go's flight
// recorder: which goroutines worked for it, and where their time went.
//
// A span is found in the execution trace through the messages otelfr logs
// under otelfr.LogCategory when the span starts and ends ("start <trace ID>
// <span ID>", "end ..."). otelfr's TracerProvider wrapper logs them into the
// runtime/trace task that the OpenTelemetry SDK starts for every recording
// span while a flight recorder runs, the end only for spans of 10 ms or
// more (the task's end is a shorter span's end); the span processor, used
// alone, logs both on the goroutine that starts and ends the span.
// [Analyze] follows either: the task's goroutines, or that goroutine.
//
// A [Diagnosis] covers the span's interval, cut to the snapshot's window
// ([StatusPartial] when it is cut), and the goroutines that worked for the
// span: the one that started it ([RoleMain]), the others with events in its
// task or its child spans' tasks ([RoleTask]), those its goroutines created
// during it ([RoleChild]), and those that woke any of these from a wait
// ([RoleWaker]), such as the holder of a contended mutex. Each goroutine's
// time is split into [Buckets] by [State]: running, runnable (waiting for a
// P), in a syscall, blocked on a channel, select, mutex or other sync
// primitive, sync.Cond, sleep or the network, in a GC mark assist, or
// blocked otherwise. The states follow the goroutine summaries of `go tool
// trace`; [State] documents the mapping. The buckets of a goroutine add up
// to its time in the interval, so the main goroutine's add up to the span's
// duration.
//
// The longest blocking episodes keep the stack where the goroutine blocked
// and the goroutine, with its stack, that woke it. The GC's share of the
// interval is reported as overlaps: mark phases and stop-the-world phases
// that ran during the span, and the mark assists of its goroutines.
//
// The verdict is one line, for example
//
//	78% of 240 ms blocked on sync.Mutex in cache.(*Cache).Get; released by goroutine 41 in cache.(*Cache).refresh, which was mostly running (190 ms)
//
// It names the main goroutine's dominant state, the first function in the
// program's own code where it spent that time (past the runtime, the
// standard library, third-party libraries and instrumentation; see
// [WithProgram]), and what caused it: the main goroutine's buckets add up
// to the span, so its shares read as shares of the span, where a sum over
// goroutines running in parallel would count time twice. What caused it
// is, for a wait another goroutine ended, the wait chain
// ([Diagnosis.Chain]) to the goroutine that was doing the work:
//
//	100% of 250 ms blocked on a channel receive in main.commit; woken through goroutines 53, 54 by goroutine 55 in main.fsync, mostly in system calls (250 ms)
//
// for a wait a timer ended, the timer ("the context deadline expired after
// 200 ms", [Episode.Timeout]); for runnable time, who held the Ps
// ([Diagnosis.RanWhileRunnable]) or the stops of the world that kept the
// span off them, named by the runtime's reason and the goroutine that
// stopped it ([GC.STW]). The verdict stays within 200 characters, leaving
// out detail, the middle of a chain first, to fit.
//
// # Causes
//
// [Diagnosis.Cause] is the verdict's grouping key, what the fleet's causes
// page (package viewer) groups anomalies by: the verdict without its
// numbers, so that two diagnoses of one problem share it whatever
// goroutine IDs, durations, shares, line numbers and addresses they saw.
// It joins with "; ", for a failed span, "error: " and its error summary
// with every run of digits replaced by "#"; the main goroutine's dominant
// state ([State.String]) and " in " the function the verdict names for it;
// and, where the diagnosis found one, "root: " and the root cause: the
// function of the wait chain's last hop (not what it was doing, which a
// loaded machine blurs), or the timer that ended the wait; who held the
// Ps; or the reason the world was stopped:
//
//	blocked.chan in main.commit; root: main.fsync
//	runnable in main.handle; root: main.spin running
//	blocked.select in main.call; root: context deadline
//
// [WriteProfile] writes `go tool trace`'s blocking, network, syscall and
// scheduler-latency profiles, cut to a span, in pprof's format.
//
// A failed span's verdict leads with the failure and gives the timing
// second, for example
//
//	error: Unavailable from inventory.Inventory/Reserve (server.address inventory:50051): connection refused; then 100% of 57 µs running in syscall.write
//
// The execution trace does not say whether a span failed: the span does,
// and [ErrorSummary] reads it (status, exception event, HTTP or gRPC status
// code, and for a client span the downstream it called) into [Span.Error].
// [Diagnoser] does so for every span it diagnoses.
//
// # Cost
//
// A snapshot is a chain of self-contained generations, about one a
// second. Analyze finds the span's generations by their clock snapshots and
// by searching their string tables for the span's ID, and parses only
// those, and the one before when it tells why a goroutine of the span was
// already waiting or what the goroutines that held the Ps were: a span
// that just ended in a 32 MiB snapshot costs one to three generations.
// [Spans], which lists every span a snapshot shows, parses it all.
//
// # Usage
//
// Diagnose a span from a snapshot taken by otelfr's Recorder, and put the
// diagnosis on a span of your own:
//
//	d, err := analysis.Analyze(snap.Data, analysis.Span{
//		TraceID: sc.TraceID(),
//		SpanID:  sc.SpanID(),
//		Start:   ro.StartTime(),
//		End:     ro.EndTime(),
//		Error:   analysis.ErrorSummary(ro), // "" unless the span failed
//	})
//	if errors.Is(err, analysis.ErrSpanNotFound) {
//		// The snapshot's window does not hold the span.
//	}
//	fmt.Println(d.Verdict)
//	span.SetAttributes(d.Attributes()...)
//
// Or let otelfr's span processor diagnose every anomalous span it links to
// a snapshot, and put the result on the attachment span:
//
//	proc := spanprocessor.New(next, rec, exp, spanprocessor.WithDiagnoser(analysis.NewDiagnoser()))
//
// The command otelfr (cmd/otelfr) prints diagnoses of snapshot files.
//
// # What a diagnosis contains
//
// Stacks, function and file names, and span names from the snapshot: treat
// a diagnosis as sensitive as the snapshot it comes from.
package analysis
