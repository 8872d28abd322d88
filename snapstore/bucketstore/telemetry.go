package bucketstore

import (
	"context"

	"go.opentelemetry.io/otel/metric"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// ScopeName is the instrumentation scope of the spool's metrics.
const ScopeName = "github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"

// Stats counts what the spool did since the Store was made, and holds what
// it holds now. Each field is published as an instrument of the same
// meaning through the MeterProvider of [WithMeterProvider]:
//
//	otelfr.spool.uploaded       counter  {snapshot}  Uploaded
//	otelfr.spool.dropped        counter  {snapshot}  Dropped
//	otelfr.spool.upload_errors  counter  {error}     UploadErrors
//	otelfr.spool.snapshots      gauge    {snapshot}  Spooled
//	otelfr.spool.size           gauge    By          SpooledBytes
type Stats struct {
	// Uploaded counts the snapshots moved from the spool to the bucket.
	Uploaded int64
	// Dropped counts the snapshots removed from the spool without being
	// uploaded: the oldest, to make room, and any whose ID the bucket
	// holds with another trace.
	Dropped int64
	// UploadErrors counts the failed uploads, each retry of one snapshot
	// counting once.
	UploadErrors int64
	// Spooled and SpooledBytes are the snapshots in the spool now, and
	// the total size of their traces.
	Spooled      int
	SpooledBytes int64
}

// Stats returns the spool's counters; all zero without [WithSpool].
func (s *Store) Stats() Stats {
	if s.spool == nil {
		return Stats{}
	}
	return s.spool.stats()
}

// registerMetrics publishes [Stats] as observable instruments.
func (s *Store) registerMetrics(mp metric.MeterProvider) (metric.Registration, error) {
	m := mp.Meter(ScopeName, metric.WithInstrumentationVersion(otelfr.Version))
	uploaded, err1 := m.Int64ObservableCounter("otelfr.spool.uploaded", metric.WithUnit("{snapshot}"),
		metric.WithDescription("Snapshots uploaded from the local spool to the bucket."))
	dropped, err2 := m.Int64ObservableCounter("otelfr.spool.dropped", metric.WithUnit("{snapshot}"),
		metric.WithDescription("Snapshots dropped from the local spool without being uploaded, oldest first when it is full."))
	failures, err3 := m.Int64ObservableCounter("otelfr.spool.upload_errors", metric.WithUnit("{error}"),
		metric.WithDescription("Failed uploads from the local spool to the bucket, each retry counting once."))
	count, err4 := m.Int64ObservableGauge("otelfr.spool.snapshots", metric.WithUnit("{snapshot}"),
		metric.WithDescription("Snapshots in the local spool, waiting for upload."))
	size, err5 := m.Int64ObservableGauge("otelfr.spool.size", metric.WithUnit("By"),
		metric.WithDescription("Total size of the traces in the local spool."))
	for _, err := range []error{err1, err2, err3, err4, err5} {
		if err != nil {
			return nil, err
		}
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := s.spool.stats()
		o.ObserveInt64(uploaded, st.Uploaded)
		o.ObserveInt64(dropped, st.Dropped)
		o.ObserveInt64(failures, st.UploadErrors)
		o.ObserveInt64(count, int64(st.Spooled))
		o.ObserveInt64(size, st.SpooledBytes)
		return nil
	}, uploaded, dropped, failures, count, size)
}
