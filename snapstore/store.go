package snapstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

var (
	// ErrNotFound is returned by a [Store] for a snapshot it does not hold,
	// whether it never existed or retention removed it.
	ErrNotFound = errors.New("otelfr/snapstore: snapshot not found")

	// ErrInvalidID is returned for a snapshot ID that is not 1 to 64
	// characters from A-Z, a-z, 0-9, '-' and '_'. Such IDs are refused
	// before touching storage, so that no ID can name a path.
	ErrInvalidID = errors.New("otelfr/snapstore: invalid snapshot ID")

	// ErrBadPageToken is returned by a [Pager] for a page token it did not
	// return, such as one altered in a link.
	ErrBadPageToken = errors.New("otelfr/snapstore: invalid page token")
)

// Info describes a stored snapshot.
type Info struct {
	ID            string        `json:"id"`
	Reason        string        `json:"reason"`
	Size          int64         `json:"size"`
	SHA256        string        `json:"sha256"`
	WindowStart   time.Time     `json:"window_start"`
	WindowEnd     time.Time     `json:"window_end"`
	TakenAt       time.Time     `json:"taken_at"`
	WriteDuration time.Duration `json:"write_duration_ns"`
	MinAge        time.Duration `json:"min_age_ns,omitempty"`
	MaxBytes      uint64        `json:"max_bytes,omitempty"`

	// CrashOutput is, for a crash snapshot, what the crashed process's
	// runtime wrote about the crash (otelfr.Snapshot.CrashOutput).
	CrashOutput string `json:"crash_output,omitempty"`

	// Spans are the anomalous spans linked to the snapshot.
	Spans []SpanRef `json:"spans,omitempty"`

	// Resource identifies the process that took the snapshot, in stores
	// that a fleet shares (package bucketstore); zero where the store does
	// not record it.
	Resource Resource `json:"resource,omitzero"`

	// Pending is set on a snapshot that a store holds locally and has not
	// yet uploaded where the rest of the fleet reads (package
	// bucketstore's spool). It is never set in shared storage.
	Pending bool `json:"pending,omitempty"`

	// Path is where the store keeps the trace on the local file system,
	// for `go tool trace`; empty for stores that are not file based.
	Path string `json:"-"`
}

// SpanRef describes a span linked to a snapshot.
type SpanRef struct {
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
	Name    string `json:"name"`
	// Service is the service.name of the span's own resource, when it has
	// one: a process can run several services, and a snapshot records one
	// resource (Info.Resource) for all of them.
	Service string    `json:"service,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Reason  string    `json:"reason"`
	// Verdict is the diagnosis's one-line explanation, when a diagnoser
	// ran.
	Verdict string `json:"verdict,omitempty"`
	// Cause is the diagnosis's grouping key (analysis.Diagnosis.Cause),
	// when a diagnoser gave one: the same for every span slowed by one
	// problem, on any replica.
	Cause string `json:"cause,omitempty"`
}

// Store keeps snapshots. Implementations must be safe for concurrent use,
// must refuse IDs that fail validation with [ErrInvalidID], and must never
// list or serve a snapshot whose Save has not completed.
type Store interface {
	// Save stores s and returns its description.
	Save(ctx context.Context, s *otelfr.Snapshot) (Info, error)
	// List returns the stored snapshots, newest first.
	List(ctx context.Context) ([]Info, error)
	// Open returns the snapshot's data and description. The caller closes
	// the reader. It returns [ErrNotFound] for an unknown ID.
	Open(ctx context.Context, id string) (io.ReadSeekCloser, Info, error)
	// AddSpans records spans linked to a stored snapshot, appending them
	// to Info.Spans. It returns [ErrNotFound] for an unknown ID.
	AddSpans(ctx context.Context, id string, spans []SpanRef) error
}

// Creator is implemented by stores that take a snapshot's trace as a
// stream, written straight where the store keeps it, so that no copy of
// the whole trace is held in memory. Package spanprocessor streams each
// snapshot into such a store with [otelfr.Recorder.WriteSnapshot], and
// falls back to [Store.Save] for the others.
type Creator interface {
	// Create begins a snapshot. The caller writes its trace to the
	// returned SnapshotWriter, then calls Commit or Abort.
	Create(ctx context.Context) (SnapshotWriter, error)
}

// SnapshotWriter is a snapshot being written into a store. Nothing of it
// is listed or served before Commit returns. It is not safe for
// concurrent use.
type SnapshotWriter interface {
	io.Writer
	// Commit stores the trace written as the snapshot s describes, and
	// returns its description, whose Size is the number of bytes
	// written. s.Data is ignored; s.SHA256 is the hex SHA-256 of the
	// trace written. It may be empty, as [otelfr.Recorder.WriteSnapshot]
	// leaves it, in a store that is a [Checksummer]: the snapshot is then
	// stored, listed and served with Info.SHA256 empty until SetSHA256
	// records it. A store that is not returns [ErrNoChecksum]. A failed
	// Commit discards the trace.
	Commit(ctx context.Context, s *otelfr.Snapshot) (Info, error)
	// Abort discards the trace. It is a no-op after Commit or Abort.
	Abort()
}

// Checksummer is implemented by Creators that commit a snapshot before
// its SHA-256 is known, so that hashing the trace (about 1 ms per MiB)
// stays off the path from the flight recorder to the store: the caller
// hashes the stored trace afterwards and records the sum.
type Checksummer interface {
	// SetSHA256 records sum, the hex SHA-256 of the stored trace of the
	// snapshot id, committed without one. It returns [ErrNotFound] for an
	// unknown ID, and [ErrChecksumMismatch] if the snapshot has another
	// sum already; recording the same sum again is a no-op.
	SetSHA256(ctx context.Context, id, sum string) error
}

var (
	// ErrNoChecksum is returned by [SnapshotWriter.Commit] for a snapshot
	// without its SHA-256, in a store that is not a [Checksummer].
	ErrNoChecksum = errors.New("otelfr/snapstore: snapshot has no SHA-256")

	// ErrChecksumMismatch is returned by [Checksummer.SetSHA256] for a
	// snapshot that has another SHA-256 already.
	ErrChecksumMismatch = errors.New("otelfr/snapstore: snapshot has another SHA-256")
)

// NewInfo returns the description of snapshot s of size bytes whose
// trace has the hex SHA-256 sum, as a store records it.
func NewInfo(s *otelfr.Snapshot, size int64, sum string) Info {
	return Info{
		ID:            s.ID,
		Reason:        s.Reason,
		Size:          size,
		SHA256:        sum,
		WindowStart:   s.Start,
		WindowEnd:     s.End,
		TakenAt:       s.TakenAt,
		WriteDuration: s.WriteDuration,
		MinAge:        s.MinAge,
		MaxBytes:      s.MaxBytes,
		CrashOutput:   s.CrashOutput,
	}
}

// Pager is implemented by stores that can list one page of snapshots
// without reading the others; package viewer pages its index with it.
type Pager interface {
	// ListPage returns at most n snapshots, newest first, starting at
	// token ("" for the newest), and the token of the next page ("" after
	// the last). It returns an error matching [ErrBadPageToken] for a
	// token it did not return.
	ListPage(ctx context.Context, token string, n int) (page []Info, next string, err error)
}

// ValidID reports whether id is acceptable as a snapshot ID: 1 to 64
// characters from A-Z, a-z, 0-9, '-' and '_'.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
