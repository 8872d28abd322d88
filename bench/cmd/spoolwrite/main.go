// Command spoolwrite isolates what BenchmarkSnapshotPath (in
// snapstore/bucketstore) finds on a machine whose spooled Save is slower
// than the DirStore's: it times the one write(2) of a 16 MiB snapshot file
// in two directories, alternately, one every 800 ms, as the stores do:
//
//   - spool: each file is read back and removed at once, as the uploader
//     does once it has uploaded the file;
//   - dir: each file is removed four files later, as a DirStore with
//     WithMaxCount(4) does.
//
// No network, no hashing, nothing else: a difference between the two is
// the kernel's, in what it costs to write into page-cache pages it freed
// a while ago.
//
//	cd bench && go run ./cmd/spoolwrite [DIR]
//
// It writes 16 files in each directory, under DIR (os.TempDir by
// default), removes them and prints the medians; it takes about 30 s.
package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	size    = 16 << 20
	files   = 16
	spacing = 800 * time.Millisecond
	keep    = 4 // the DirStore's retention
)

func main() {
	base := os.TempDir()
	if len(os.Args) > 1 {
		base = os.Args[1]
	}
	data := make([]byte, size)
	_, _ = rand.Read(data)
	spool, err := os.MkdirTemp(base, "spoolwrite-spool-")
	check(err)
	defer os.RemoveAll(spool)
	dir, err := os.MkdirTemp(base, "spoolwrite-dir-")
	check(err)
	defer os.RemoveAll(dir)

	var tSpool, tDir []time.Duration
	for i := range files {
		name := fmt.Sprint(i)
		tSpool = append(tSpool, write(filepath.Join(spool, name), data))
		f, err := os.Open(filepath.Join(spool, name))
		check(err)
		_, err = io.Copy(io.Discard, f)
		check(err)
		check(f.Close())
		check(os.Remove(filepath.Join(spool, name)))
		time.Sleep(spacing)

		tDir = append(tDir, write(filepath.Join(dir, name), data))
		if i >= keep {
			check(os.Remove(filepath.Join(dir, fmt.Sprint(i-keep))))
		}
		time.Sleep(spacing)
	}
	fmt.Printf("write(2) of %d MiB, median of %d: spool (removed at once) %v, dir (removed %d files later) %v\n",
		size>>20, files, median(tSpool), keep, median(tDir))
	fmt.Printf("spool: %v\ndir:   %v\n", rounded(tSpool), rounded(tDir))
}

// write writes data to a temporary file and renames it to path, as both
// stores do, and returns how long the write(2) took.
func write(path string, data []byte) time.Duration {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	check(err)
	start := time.Now()
	_, err = f.Write(data)
	took := time.Since(start)
	check(err)
	check(f.Close())
	check(os.Rename(f.Name(), path))
	return took
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Microsecond)
	}
	return out
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "spoolwrite:", err)
		os.Exit(1)
	}
}
