// Package snapstore keeps flight-recorder snapshots.
//
// A [Store] saves snapshots, lists them newest first, opens each one's
// execution trace and records the spans linked to it. [DirStore] keeps them
// as files in a local directory, with atomic writes and retention by count
// and total size; package snapstore/bucketstore keeps them in object
// storage, for a fleet. Package exporter saves into a Store, and package
// viewer serves one.
//
// Stores that implement [Creator], as DirStore and bucketstore's do, take
// a snapshot as a stream: otelfr.Recorder.WriteSnapshot writes the flight
// recorder's window straight into the store's file, in one pass, and
// [SnapshotWriter.Commit] stores it, so that no copy of the whole trace is
// held in memory. Package spanprocessor streams every snapshot that way
// when its store allows it. A store that is also a [Checksummer], as both
// are, takes the trace unhashed and records its SHA-256 afterwards, so
// that hashing stays off the snapshot's path.
//
// IDs are validated ([ValidID]) before they reach storage, so that no ID
// can name a path, and a Store never lists or serves a snapshot whose Save
// has not completed.
//
// # Usage
//
//	store, err := snapstore.NewDirStore("/var/lib/myservice/snapshots",
//		snapstore.WithMaxCount(20), snapstore.WithMaxTotalBytes(512<<20))
//	if err != nil {
//		return err
//	}
package snapstore
