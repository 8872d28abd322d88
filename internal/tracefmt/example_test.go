package tracefmt_test

import (
	"encoding/binary"
	"fmt"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
)

// A trace with one generation: a sync batch, an event batch and the end
// marker, walked batch by batch.
func Example() {
	sync := []byte{tracefmt.EvSync, tracefmt.EvFrequency}
	sync = binary.AppendUvarint(sync, 1e9) // 1 ns per tick
	sync = append(sync, tracefmt.EvClockSnapshot)
	for _, a := range []uint64{5, 0, 1_700_000_000, 0} { // dt, mono, sec, nsec
		sync = binary.AppendUvarint(sync, a)
	}
	h := tracefmt.Header(26)
	data := h[:]
	for _, payload := range [][]byte{sync, {17, 2}} {
		data = append(data, tracefmt.EvEventBatch, 1, 0) // generation 1, M 0
		data = binary.AppendUvarint(data, 1000)          // base timestamp
		data = binary.AppendUvarint(data, uint64(len(payload)))
		data = append(data, payload...)
	}
	data = append(data, tracefmt.EvEndOfGeneration)

	v, err := tracefmt.Version(data)
	fmt.Println("go 1.", v, err)
	for p := tracefmt.HeaderLen; p < len(data); {
		if data[p] == tracefmt.EvEndOfGeneration {
			fmt.Println("end of generation")
			p++
			continue
		}
		b, next, err := tracefmt.ReadBatch(data, p)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("generation %d, ts %d, %d bytes, sync %t\n", b.Gen, b.Ts, len(b.Payload), b.Kind() == tracefmt.KindSync)
		if b.Kind() == tracefmt.KindSync {
			for q := 1; q < len(b.Payload); {
				var ev tracefmt.SyncEvent
				ev, q, err = tracefmt.ReadSyncEvent(b.Payload, q)
				if err != nil {
					fmt.Println(err)
					return
				}
				fmt.Printf("  %+v\n", ev)
			}
		}
		p = next
	}
	// Output:
	// go 1. 26 <nil>
	// generation 1, ts 1000, 16 bytes, sync true
	//   {Type:8 Freq:1000000000 Dt:0 Sec:0 Nsec:0}
	//   {Type:51 Freq:0 Dt:5 Sec:1700000000 Nsec:0}
	// generation 1, ts 1000, 2 bytes, sync false
	// end of generation
}
