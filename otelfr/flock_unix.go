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

// dirInUse reports whether a process holds the ring directory's lock file
// at path, without creating it or writing anything: a shared lock, taken
// and released at once, conflicts only with a holder's exclusive one.
func dirInUse(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return true, nil
		}
		return false, err
	}
	return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
