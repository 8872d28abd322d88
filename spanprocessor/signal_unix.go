//go:build unix

package spanprocessor

import (
	"os"
	"syscall"
)

var defaultSignals = []os.Signal{syscall.SIGUSR1}
