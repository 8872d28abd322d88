// Package bucketstore keeps snapshots in object storage, so that every
// replica of a service writes to one place and one viewer serves them all.
//
// A [Store] implements [snapstore.Store] over a [gocloud.dev/blob] bucket,
// chosen by URL:
//
//	s3://BUCKET?region=REGION                                   Amazon S3
//	s3://BUCKET?endpoint=http://HOST:8333&region=us-east-1&use_path_style=true
//	                                                            S3-compatible servers (SeaweedFS, versitygw, …)
//	gs://BUCKET                                                 Google Cloud Storage
//	azblob://CONTAINER                                          Azure Blob Storage
//	file:///ABSOLUTE/DIR                                        a local directory
//	mem://                                                      memory, for tests
//
// Any of them takes prefix=DIR/ to keep the store under a key prefix, for
// one bucket shared by several teams. Credentials come from each cloud's
// usual sources (for S3, the AWS_* environment variables, the shared
// config files, or the instance's role); they never go in the URL.
//
// # Drivers
//
// The package links no driver: a program links only the drivers it
// imports, each with a blank import, so that a service writing to S3 does
// not carry the Google and Azure SDKs:
//
//	import _ "gocloud.dev/blob/s3blob"    // s3://
//	import _ "gocloud.dev/blob/gcsblob"   // gs://
//	import _ "gocloud.dev/blob/azureblob" // azblob://
//	import _ "gocloud.dev/blob/fileblob"  // file://
//	import _ "gocloud.dev/blob/memblob"   // mem://
//
// [Open] with a scheme whose driver is not linked fails, naming the
// schemes that are. A bucket opened in code, with a client configured
// otherwise, is given to [New].
//
// gocloud.dev/blob was chosen over a smaller S3 client for the one API
// over every service a fleet already runs, and the local and in-memory
// drivers the tests use. Without a driver it adds the gocloud.dev and
// google.golang.org/api modules, and brings gRPC and the metric SDK,
// which an OpenTelemetry program usually links anyway; s3blob adds the
// AWS SDK. The packages otelfr, spanprocessor and exporter do not import
// this package: a program that keeps snapshots on local disk links none
// of it.
//
// # Telemetry of its own
//
// gocloud.dev/blob records a span and latency metrics for every bucket
// call with the global TracerProvider and MeterProvider. In a process that
// otelfr observes, that is a feedback loop: a 16 MiB upload easily lasts
// longer than a latency threshold, and fails while the bucket is down, so
// its span is anomalous, the span processor snapshots it, and that
// snapshot's upload is another such span. So the calls a Store makes on
// behalf of the process it serves (Save, AddSpans, and the uploader's)
// run under a remote parent span that is not sampled, with random IDs, and
// a ParentBased sampler, the SDK's default, drops their spans; their
// context is also marked as otelfr's own, so that
// spanprocessor.RecordUnsampled, which records what its sampler drops,
// leaves them dropped. A sampler that ignores the parent samples them.
// Reads (List,
// ListPage, Meta, Open), which serve a viewer, are traced as children of
// the caller's span.
//
// # Key layout
//
// Each snapshot is two objects:
//
//	otelfr/v1/trace/ID.trace                              the execution trace
//	otelfr/v1/meta/INVERTED-20261201T100000Z-ID.json      its metadata, a snapstore.Info as JSON
//
// The trace object is written once, with a write that fails if the key
// exists, and never rewritten: AddSpans rewrites the metadata object only.
// Its attribute otelfr-meta-key names the metadata object, so that an ID
// leads to its metadata in two requests, without a listing (file:// buckets
// must therefore keep their attributes: not metadata=skip).
//
// INVERTED is 9223372036854775807 (MaxInt64) minus the snapshot's TakenAt
// in nanoseconds since the Unix epoch, 19 digits wide, so that a listing in
// key order, the only order object storage lists in, is newest first; ties
// go by ID. The readable UTC time after it is for people browsing the
// bucket. The newest page of snapshots thus costs one listing request and
// one read per snapshot, however many the bucket holds ([Store.ListPage]);
// a layout in increasing time, by date prefixes for example, must list
// every key, or guess which date prefixes exist, to find the newest.
//
// Measured with BenchmarkList over 10,000 snapshots on a shared 2-core
// machine (go test -run '^$' -bench BenchmarkList -benchtime 3x; the
// numbers vary by a factor of two from run to run):
//
//	                                   memblob   fileblob
//	ListPage, newest 50                  4 ms      13-17 ms
//	List, every snapshot, cold          60-100 ms 250-400 ms
//	List, every snapshot, warm          15-45 ms  115 ms
//	listing every key                    5 ms     105 ms
//	listing the newest 50 keys           3 ms      12 ms
//
// On S3 a listing request returns at most 1,000 keys, so listing 10,000
// keys is ten requests in sequence, and reading 10,000 metadata objects is
// 10,000 requests: [Store.List] reads them 16 at a time and keeps what it
// read, read again only when a listing shows an object changed, so a warm
// List costs the listing alone. A viewer over a large bucket pages with
// ListPage instead.
//
// # Metadata
//
// The metadata object is the snapshot's [snapstore.Info] as JSON: the
// linked spans with their verdicts, and in Info.Resource the resource
// attributes that tell the fleet's processes apart (service.name, service.namespace,
// service.version, service.instance.id, host.name, k8s.pod.name,
// k8s.namespace.name), from [WithResource] or [resource.Default]. A
// fleet viewer filters on them after reading a page; the key layout does
// not split by service, which would cost the global newest-first order.
//
// # Consistency
//
// Save writes the trace, then the metadata: a snapshot is listed and
// served from the moment its metadata is written, never before. A trace
// left without its metadata by a failed Save is never listed or served;
// the bucket's lifecycle rules, which are how retention works in a
// bucket, remove it with the rest. AddSpans calls in one process are
// serialized per snapshot; object storage has no append, so two processes
// adding spans to one snapshot at once may lose one's, which the exporter
// never does (spans reach a snapshot from the process that took it).
//
// # Usage
//
//	import _ "gocloud.dev/blob/s3blob"
//
//	store, err := bucketstore.Open(ctx, os.Getenv("OTELFR_STORE"), bucketstore.WithResource(res))
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
// Pass store wherever an [snapstore.Store] goes. Without a spool, Save
// waits for the bucket; with [WithSpool], it does not.
//
// A program that lets its user choose between a local directory and a
// bucket, with one string, calls [OpenStore] on the value of [EnvStore]
// (OTELFR_STORE) or of a -store flag: a directory path gives an
// [snapstore.DirStore], a URL a spooled Store.
//
// # Spool
//
// With [WithSpool], Save writes the snapshot to a local directory, the
// spool, and returns without waiting on the network, however slow or down
// the bucket is. A background uploader, started by [New] or [Open],
// uploads the spooled snapshots one at a time, oldest first, and removes
// each from the spool once its metadata is in the bucket. A failed upload
// (one that takes over 5 minutes is cancelled, so that a connection that
// hangs without failing holds up the spool for a while only) is retried
// after a wait that doubles from 1 s up to 30 s, each wait
// drawn between half and all of that, so that replicas that lost the
// bucket together do not retry together; a success resets it. The oldest
// snapshot is retried until it goes through or is dropped, so that the
// bucket receives the snapshots in order.
//
// A spool directory has one owner at a time, which locks it (flock(2), on
// Unix) until its Store is closed or its process ends: another Store
// given the same directory fails with [ErrSpoolBusy], and [OpenStore]
// gives each process that opens a URL a spool of its own, so that replicas
// on one host never touch each other's files.
//
// The spool holds at most the bytes given to WithSpool: to spool a
// snapshot, the oldest spooled ones are dropped first, until it fits; one
// larger than the bound is spooled alone. A snapshot dropped while it is
// being uploaded has its upload cancelled. [Store.Stats] counts the
// uploads, the drops and the failed uploads, and the same counts are
// published as metrics (otelfr.spool.uploaded, otelfr.spool.dropped,
// otelfr.spool.upload_errors, with the gauges otelfr.spool.snapshots and
// otelfr.spool.size) through [WithMeterProvider]'s MeterProvider. Upload
// failures go to otel.Handle, but not one per retry: the first of a run,
// then at most one a minute while the run lasts, saying how many failed
// since the last.
//
// This Store lists and serves the spooled snapshots beside the bucket's,
// each once, newest first, with Info.Pending set; AddSpans on a spooled
// snapshot rewrites its spooled metadata, so that its spans are uploaded
// with it. Other processes see a snapshot only once its upload has
// finished: a central viewer over the bucket, such as `otelfr serve`, does
// not list it and answers 404 Not Found for its URL until then, so that an
// attachment's link followed at once from Jaeger may miss a snapshot for
// as long as the bucket is down, and find it once the upload is through.
//
// The spool survives the process: each snapshot is two files, written
// under temporary names and renamed, so that a crash leaves no partial
// one. A Store over a directory that a previous process left snapshots in
// uploads them; one whose upload finished before the crash could remove
// it is recognized by its SHA-256 and not uploaded twice. A spooled ID
// that the bucket holds with another trace is dropped and reported.
// [Store.Shutdown] waits for the spool to empty, up to its context's
// deadline, and [Store.Close] stops the uploader at once; what they leave
// is uploaded by the next Store over the directory, which belongs to one
// Store at a time.
package bucketstore
