// Package tracefmt reads the framing of Go 1.25 and 1.26 execution traces:
// the header, the batches and the sync batches that relate the trace clock to
// the wall clock. It is what otelfr (to find a snapshot's wall-clock window)
// and analysis (to split a snapshot into generations) share; what each does
// with the batches, and which traces it accepts, stays with it.
//
// The format comes from internal/trace/tracev2 (events.go, spec.go),
// runtime/tracebuf.go, runtime/tracetime.go and
// internal/trace/{batch,generation}.go. A trace is a [HeaderLen]-byte header,
// "go 1.N trace" padded with NUL bytes, followed by generations. A generation
// is a run of batches with the same generation number; from Go 1.26 on it
// ends with a lone [EvEndOfGeneration] byte, which
// runtime/trace.FlightRecorder.WriteTo also emits. A batch is
//
//	EvEventBatch        gen M ts size payload[size]
//	EvExperimentalBatch exp(1 byte) gen M ts size payload[size]
//
// where gen, M, ts and size are uvarints (M is ^0, 10 bytes, for batches the
// runtime writes without an M; size is always padded to 10 bytes) and ts is
// the batch's base timestamp in trace clock units. The payload's first byte
// tells special batches apart: [EvSync] (frequency and clock snapshot),
// [EvStrings], [EvStacks], [EvCPUSamples]. Anything else is a batch of timed
// events, each one type byte, a uvarint timestamp delta from the previous
// event (the first from the batch base) and a fixed number of uvarint
// arguments.
//
// Every generation carries its own string and stack tables and a sync batch,
// so the header followed by any run of consecutive whole generations is
// itself a valid trace.
//
// # Errors
//
// The functions return errors that describe what is wrong and where, with
// no sentinel of their own: every error is a format error, and callers wrap
// it with theirs. On success nothing allocates.
package tracefmt
