package otelfr_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

func Example() {
	rec, err := otelfr.Start(
		otelfr.WithMinAge(5*time.Second),
		otelfr.WithMinInterval(time.Minute),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())

	snap, err := rec.Snapshot(context.Background(), "manual")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(snap.Reason, snap.Size() > 0, !snap.End.Before(snap.Start))

	// A second snapshot within the minimum interval is refused.
	_, err = rec.Snapshot(context.Background(), "again")
	fmt.Println(errors.Is(err, otelfr.ErrRateLimited))

	// Output:
	// manual true true
	// true
}
