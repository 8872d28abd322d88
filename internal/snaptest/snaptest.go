// Package snaptest makes fake snapshots for the stores' and handlers' tests.
package snaptest

import (
	"fmt"
	"time"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// Epoch is the time the fake snapshots are taken relative to.
var Epoch = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Snapshot returns a snapshot with ID SNAPii whose data is size bytes
// (not an execution trace), taken i seconds after Epoch and covering the
// 10 s before.
func Snapshot(i, size int) *otelfr.Snapshot {
	data := make([]byte, size)
	for j := range data {
		data[j] = byte(i + j)
	}
	at := Epoch.Add(time.Duration(i) * time.Second)
	return &otelfr.Snapshot{
		ID:      fmt.Sprintf("SNAP%02d", i),
		Reason:  "latency",
		Data:    data,
		Start:   at.Add(-10 * time.Second),
		End:     at,
		TakenAt: at,
	}
}
