//go:build !unix

package bucketstore

import "os"

// lockSpool does not lock where flock(2) is missing: there, give each
// process a spool directory of its own with [WithSpool].
func lockSpool(string) (*os.File, error) { return nil, nil }
