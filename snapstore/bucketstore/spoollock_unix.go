//go:build unix

package bucketstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockSpool takes an exclusive advisory lock on the spool directory dir,
// held until the returned file is closed or the process ends, however it
// ends. It returns [ErrSpoolBusy] when another process (or another Store
// of this one) holds it.
func lockSpool(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("otelfr/bucketstore: locking the spool: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrSpoolBusy, dir)
		}
		return nil, fmt.Errorf("otelfr/bucketstore: locking the spool: %w", err)
	}
	return f, nil
}
