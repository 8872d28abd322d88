//go:build !unix

package spanprocessor

import "os"

var defaultSignals []os.Signal
