//go:build !linux

package yield

// osYield does nothing where the thread cannot be yielded portably:
// runtime.Gosched has run already.
func osYield() {}
