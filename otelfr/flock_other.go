//go:build !unix

package otelfr

import (
	"errors"
	"os"
)

func lockDir(string) (*os.File, error) {
	return nil, errors.New("otelfr: disk mode needs flock, which this platform lacks")
}

func dirInUse(string) (bool, error) {
	return false, errors.New("otelfr: disk mode needs flock, which this platform lacks")
}
