//go:build unix

package otelfr

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes the ring directory's lock file, held until it is closed
// (or the process dies: the kernel releases it then, which is how a new
// process tells a crashed owner from a running one).
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrDiskInUse
		}
		return nil, err
	}
	return f, nil
}
