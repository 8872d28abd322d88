package otelfr

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	rtrace "runtime/trace"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
)

// twSnapshot is a flight recorder snapshot and the wall clock around it.
type twSnapshot struct {
	data        []byte
	started     time.Time // just before FlightRecorder.Start
	beforeWrite time.Time // just before WriteTo
	afterWrite  time.Time // just after WriteTo
}

// twRecorderMu serialises the flight recorders these tests start: only one
// may be active per process.
var twRecorderMu sync.Mutex

// twRecord runs a flight recorder for about d while twWorkload keeps the
// scheduler busy, snapshots it and stops it again. With cpuProfile, a CPU
// profile runs during the workload so that the trace holds CPU samples.
// Unless heavy, the trace grows by a few MiB per second; heavy, by tens.
func twRecord(tb testing.TB, d time.Duration, pairs int, heavy, cpuProfile bool) twSnapshot {
	tb.Helper()
	twRecorderMu.Lock()
	defer twRecorderMu.Unlock()

	fr := rtrace.NewFlightRecorder(rtrace.FlightRecorderConfig{
		MinAge:   time.Minute,
		MaxBytes: 256 << 20,
	})
	var s twSnapshot
	s.started = time.Now()
	require.NoError(tb, fr.Start(), "another flight recorder or trace is active")
	defer fr.Stop()

	if cpuProfile && pprof.StartCPUProfile(io.Discard) == nil {
		twWorkload(d, pairs, heavy)
		pprof.StopCPUProfile()
	} else {
		twWorkload(d, pairs, heavy)
	}

	var buf bytes.Buffer
	s.beforeWrite = time.Now()
	_, err := fr.WriteTo(&buf)
	s.afterWrite = time.Now()
	require.NoError(tb, err)
	s.data = buf.Bytes()
	return s
}

// twWorkload runs goroutines that ping-pong over channels, sleep, allocate
// and annotate the trace, for d, and waits for all of them to exit. Unless
// heavy, the goroutines pause now and then to keep the trace small.
func twWorkload(d time.Duration, pairs int, heavy bool) {
	pause := func(i int) {
		if !heavy && i%16 == 15 {
			time.Sleep(500 * time.Microsecond)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range pairs {
		ping, pong := make(chan int), make(chan int)
		wg.Go(func() {
			defer close(ping)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case ping <- i:
				}
				<-pong
				pause(i)
			}
		})
		wg.Go(func() {
			for v := range ping {
				pong <- v
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		})
	}
	wg.Go(func() {
		var keep [64][]byte
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, task := rtrace.NewTask(context.Background(), "tw.alloc")
			rtrace.WithRegion(ctx, "tw.region", func() {
				keep[i%len(keep)] = make([]byte, 32<<10)
				if i%1000 == 0 {
					rtrace.Log(ctx, "tw.iter", strconv.Itoa(i))
				}
			})
			task.End()
			pause(i)
		}
	})
	time.Sleep(d)
	close(stop)
	wg.Wait()
}

// twRef is golang.org/x/exp/trace's reading of a trace.
type twRef struct {
	first, last time.Time // wall time of the first and the last event
	snaps       []xtrace.ClockSnapshot
	events      int
}

// twReference reads data with golang.org/x/exp/trace and converts the first
// and last event times to wall-clock time with the clock snapshot of their
// generation.
func twReference(tb testing.TB, data []byte) twRef {
	tb.Helper()
	r, err := xtrace.NewReader(bytes.NewReader(data))
	require.NoError(tb, err)
	var (
		ref      twRef
		cur      *xtrace.ClockSnapshot
		lastSnap *xtrace.ClockSnapshot
		lastTime xtrace.Time
	)
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		require.NoError(tb, err)
		if ev.Kind() == xtrace.EventSync {
			if cs := ev.Sync().ClockSnapshot; cs != nil {
				cur = cs
				ref.snaps = append(ref.snaps, *cs)
			}
		}
		require.NotNil(tb, cur, "event before the first clock snapshot")
		if ref.events == 0 {
			ref.first = cur.Wall.Add(ev.Time().Sub(cur.Trace))
		}
		ref.events++
		lastTime, lastSnap = ev.Time(), cur
	}
	require.NotZero(tb, ref.events)
	ref.last = lastSnap.Wall.Add(lastTime.Sub(lastSnap.Trace))
	return ref
}

// twBoundaries returns the offsets at which a prefix of data is itself a
// complete trace: just after each end-of-generation marker.
func twBoundaries(tb testing.TB, data []byte) map[int]bool {
	tb.Helper()
	b := make(map[int]bool)
	for p := tracefmt.HeaderLen; p < len(data); {
		if data[p] == tracefmt.EvEndOfGeneration {
			p++
			b[p] = true
			continue
		}
		_, next, err := tracefmt.ReadBatch(data, p)
		require.NoError(tb, err)
		p = next
	}
	return b
}

func twAbs(d time.Duration) time.Duration { return max(d, -d) }

// TestTraceWindow checks traceWindow on a real flight recorder snapshot. It
// is the only test here that records one (one recorder per process), and its
// subtests run in sequence on that snapshot.
func TestTraceWindow(t *testing.T) {
	snap := twRecord(t, 1500*time.Millisecond, 2, false, true)
	data := snap.data
	start, end, err := twWindow(t, data)
	require.NoError(t, err)
	t.Logf("snapshot: %d bytes, window %v .. %v (%v)", len(data), start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), end.Sub(start))

	t.Run("WallClock", func(t *testing.T) {
		const tol = 5 * time.Millisecond
		t.Logf("start - recorder start = %v, end - before WriteTo = %v, after WriteTo - end = %v",
			start.Sub(snap.started), end.Sub(snap.beforeWrite), snap.afterWrite.Sub(end))
		require.False(t, start.Before(snap.started.Add(-tol)), "start %v before the recorder started %v", start, snap.started)
		require.False(t, end.After(snap.afterWrite.Add(tol)), "end %v after WriteTo returned %v", end, snap.afterWrite)
		require.False(t, end.Before(snap.beforeWrite.Add(-tol)), "end %v before WriteTo was called %v", end, snap.beforeWrite)
		require.Greater(t, end.Sub(start), 1400*time.Millisecond)
	})

	t.Run("ReferenceParser", func(t *testing.T) {
		// Both convert with the same clock snapshots, so they agree to the
		// nanosecond but for the reference parser nudging equal timestamps
		// apart.
		const tol = time.Microsecond
		ref := twReference(t, data)
		require.GreaterOrEqual(t, len(ref.snaps), 2, "want at least two generations")
		t.Logf("x/exp/trace: %d events, %d generations; start - first event = %v, end - last event = %v",
			ref.events, len(ref.snaps), start.Sub(ref.first), end.Sub(ref.last))
		t.Logf("first clock snapshot - start = %v, end - last clock snapshot = %v",
			ref.snaps[0].Wall.Sub(start), end.Sub(ref.snaps[len(ref.snaps)-1].Wall))
		require.LessOrEqual(t, twAbs(start.Sub(ref.first)), tol)
		require.LessOrEqual(t, twAbs(end.Sub(ref.last)), tol)
		for _, cs := range ref.snaps {
			require.False(t, cs.Wall.Before(start.Add(-tol)), "clock snapshot %v before start %v", cs.Wall, start)
			require.False(t, cs.Wall.After(end.Add(tol)), "clock snapshot %v after end %v", cs.Wall, end)
		}
		require.Less(t, ref.snaps[0].Wall.Sub(start), 100*time.Millisecond, "start far from the first clock snapshot")
	})

	t.Run("DecodeModes", func(t *testing.T) {
		s, e, err := scanTraceWindow(data, decodeAll)
		require.NoError(t, err)
		require.True(t, s.Equal(start))
		require.True(t, e.Equal(end), "decoding every batch of the final generation: %v, last batch per M: %v", e, end)
		s, e, err = scanTraceWindow(data, decodeNone)
		require.NoError(t, err)
		require.True(t, s.Equal(start))
		require.False(t, e.After(end))
		t.Logf("batch base timestamps alone: end earlier by %v", end.Sub(e))
	})

	t.Run("NoAllocations", func(t *testing.T) {
		allocs := testing.AllocsPerRun(10, func() {
			_, _, _ = traceWindow(data)
		})
		require.Zero(t, allocs)
	})

	t.Run("Go125Header", func(t *testing.T) {
		old := bytes.Clone(data)
		copy(old, "go 1.25 trace\x00\x00\x00")
		s, e, err := twWindow(t, old)
		require.NoError(t, err)
		require.True(t, s.Equal(start) && e.Equal(end))

		// Go 1.25 traces need no end-of-generation markers.
		stripped := old[:tracefmt.HeaderLen:tracefmt.HeaderLen]
		for p := tracefmt.HeaderLen; p < len(old); {
			if old[p] == tracefmt.EvEndOfGeneration {
				p++
				continue
			}
			_, next, err := tracefmt.ReadBatch(old, p)
			require.NoError(t, err)
			stripped = append(stripped, old[p:next]...)
			p = next
		}
		s, e, err = twWindow(t, stripped)
		require.NoError(t, err)
		require.True(t, s.Equal(start) && e.Equal(end))

		// But Go 1.26 traces do.
		copy(stripped, "go 1.26 trace\x00\x00\x00")
		_, _, err = twWindow(t, stripped)
		require.ErrorIs(t, err, errTraceFormat)
	})

	t.Run("Truncated", func(t *testing.T) {
		boundaries := twBoundaries(t, data)
		require.GreaterOrEqual(t, len(boundaries), 2)
		cuts := make(map[int]bool)
		for i := range min(len(data), 4096) {
			cuts[i] = true
		}
		for p := range boundaries {
			for d := -20; d <= 20; d++ {
				cuts[p+d] = true
			}
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for range 5000 {
			cuts[rng.IntN(len(data))] = true
		}
		var ok int
		for cut := range cuts {
			if cut < 0 || cut >= len(data) {
				continue
			}
			s, e, err := traceWindow(data[:cut])
			if cut%64 == 0 || boundaries[cut] {
				s, e, err = twWindow(t, data[:cut])
			}
			if boundaries[cut] {
				// A prefix of whole generations is a shorter trace.
				require.NoError(t, err, "cut at %d", cut)
				require.True(t, s.Equal(start), "cut at %d", cut)
				require.False(t, e.After(end), "cut at %d", cut)
				require.False(t, e.Before(s), "cut at %d", cut)
				ok++
				continue
			}
			require.ErrorIs(t, err, errTraceFormat, "cut at %d of %d", cut, len(data))
		}
		require.NotZero(t, ok)
	})

	t.Run("Corrupted", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		buf := make([]byte, len(data))
		var failed int
		for range 200 {
			copy(buf, data)
			for range 1 + rng.IntN(8) {
				buf[tracefmt.HeaderLen+rng.IntN(len(buf)-tracefmt.HeaderLen)] ^= byte(1 + rng.IntN(255))
			}
			s, e, err := twWindow(t, buf)
			if err != nil {
				require.ErrorIs(t, err, errTraceFormat)
				failed++
				continue
			}
			require.False(t, e.Before(s))
		}
		t.Logf("%d of 200 corrupted copies rejected", failed)
	})

	t.Run("WrongVersion", func(t *testing.T) {
		for _, h := range []string{
			"go 1.24 trace\x00\x00\x00",
			"go 1.27 trace\x00\x00\x00",
			"go 1.22 trace\x00\x00\x00",
			"go 1.26 trace\x00\x00\x01",
			"go 1.26 trace   ",
			"GO 1.26 TRACE\x00\x00\x00",
		} {
			bad := bytes.Clone(data)
			copy(bad, h)
			_, _, err := twWindow(t, bad)
			require.ErrorIs(t, err, errTraceFormat, "header %q", h)
		}
	})
}

// twBuilder writes synthetic traces in the Go 1.26 wire format.
type twBuilder struct{ b []byte }

func newTWBuilder(header string) *twBuilder {
	return &twBuilder{b: []byte(header)}
}

func (w *twBuilder) batch(gen, m, ts uint64, payload []byte) *twBuilder {
	w.b = append(w.b, tracefmt.EvEventBatch)
	w.b = binary.AppendUvarint(w.b, gen)
	w.b = binary.AppendUvarint(w.b, m)
	w.b = binary.AppendUvarint(w.b, ts)
	w.b = twPaddedUvarint(w.b, uint64(len(payload)))
	w.b = append(w.b, payload...)
	return w
}

func (w *twBuilder) eog() *twBuilder {
	w.b = append(w.b, tracefmt.EvEndOfGeneration)
	return w
}

// twPaddedUvarint appends v as a 10-byte uvarint, as the runtime writes batch
// sizes.
func twPaddedUvarint(b []byte, v uint64) []byte {
	for i := range tracefmt.MaxVarintLen {
		c := byte(v & 0x7f)
		if i < tracefmt.MaxVarintLen-1 {
			c |= 0x80
		}
		b = append(b, c)
		v >>= 7
	}
	return b
}

// twEvents encodes events, each a type followed by its uvarint arguments.
func twEvents(evs ...[]uint64) []byte {
	var b []byte
	for _, ev := range evs {
		b = append(b, byte(ev[0]))
		for _, a := range ev[1:] {
			b = binary.AppendUvarint(b, a)
		}
	}
	return b
}

func twSync(freq, dt uint64, wall time.Time) []byte {
	b := []byte{tracefmt.EvSync}
	b = append(b, twEvents(
		[]uint64{tracefmt.EvFrequency, freq},
		[]uint64{tracefmt.EvClockSnapshot, dt, 12345, uint64(wall.Unix()), uint64(wall.Nanosecond())},
	)...)
	return b
}

const (
	twFreq      = 1e9 / 64 // trace clock units per second: 64 ns per unit
	twMAny      = ^uint64(0)
	twEvGoStart = 16
	twEvProcEnd = 11 // ProcStop [dt]
	twEvGoDone  = 17 // GoDestroy [dt]
)

var twWall = time.Unix(1_700_000_000, 500)

// twUnit converts trace clock units to a duration at twFreq.
func twUnit(n int64) time.Duration { return time.Duration(n * 64) }

// twTwoGens is a synthetic two-generation trace. Generation 1's clock
// snapshot is at ts 1010 = twWall; generation 2's at ts 2000. Its earliest
// batch is at ts 900, its last event at 3050, in an M's batch that starts
// before the other Ms' last batches, and its latest event batch base is 2200.
func twTwoGens(header string) *twBuilder {
	wall2 := twWall.Add(twUnit(2000 - 1010))
	return newTWBuilder(header).
		batch(1, twMAny, 1000, twSync(twFreq, 10, twWall)).
		batch(1, 1, 900, twEvents([]uint64{twEvGoStart, 5, 1, 1}, []uint64{twEvProcEnd, 200})).
		batch(1, 2, 950, twEvents([]uint64{twEvProcEnd, 10})).
		batch(1, twMAny, 5000, []byte{tracefmt.EvStacks}).
		eog().
		batch(2, twMAny, 2000, twSync(twFreq, 0, wall2)).
		batch(2, 1, 2100, twEvents([]uint64{twEvProcEnd, 50})).
		batch(2, 2, 2050, twEvents([]uint64{twEvGoStart, 1, 7, 1}, []uint64{twEvGoDone, 999})).
		batch(2, 1, 2200, twEvents([]uint64{twEvProcEnd, 7})).
		batch(2, twMAny, 9000, []byte{tracefmt.EvStrings}).
		eog()
}

const (
	twHeader126 = "go 1.26 trace\x00\x00\x00"
	twHeader125 = "go 1.25 trace\x00\x00\x00"
)

func TestTraceWindowSynthetic(t *testing.T) {
	wantStart := twWall.Add(twUnit(900 - 1010))
	wall2 := twWall.Add(twUnit(2000 - 1010))
	wantEnd := wall2.Add(twUnit(3050 - 2000))

	t.Run("TwoGenerations", func(t *testing.T) {
		data := twTwoGens(twHeader126).b
		start, end, err := twWindow(t, data)
		require.NoError(t, err)
		require.Equal(t, wantStart.UnixNano(), start.UnixNano())
		require.Equal(t, wantEnd.UnixNano(), end.UnixNano())

		_, end, err = scanTraceWindow(data, decodeNone)
		require.NoError(t, err)
		require.Equal(t, wall2.Add(twUnit(2200-2000)).UnixNano(), end.UnixNano())

		_, end, err = scanTraceWindow(data, decodeAll)
		require.NoError(t, err)
		require.Equal(t, wantEnd.UnixNano(), end.UnixNano())
	})

	t.Run("Go125", func(t *testing.T) {
		start, end, err := twWindow(t, twTwoGens(twHeader125).b)
		require.NoError(t, err)
		require.Equal(t, wantStart.UnixNano(), start.UnixNano())
		require.Equal(t, wantEnd.UnixNano(), end.UnixNano())

		// Without end-of-generation markers, and unterminated at the end.
		w := newTWBuilder(twHeader125).
			batch(1, twMAny, 1000, twSync(twFreq, 10, twWall)).
			batch(1, 1, 900, twEvents([]uint64{twEvProcEnd, 300})).
			batch(2, twMAny, 2000, twSync(twFreq, 0, wall2)).
			batch(2, 1, 2100, twEvents([]uint64{twEvProcEnd, 950}))
		start, end, err = twWindow(t, w.b)
		require.NoError(t, err)
		require.Equal(t, wantStart.UnixNano(), start.UnixNano())
		require.Equal(t, wantEnd.UnixNano(), end.UnixNano())
	})

	t.Run("CPUSamples", func(t *testing.T) {
		w := twTwoGens(twHeader126)
		w.b = w.b[:len(w.b)-1] // reopen generation 2
		samples := []byte{tracefmt.EvCPUSamples}
		samples = append(samples, twEvents(
			[]uint64{tracefmt.EvCPUSample, 2500, 1, 0, 1, 3},
			[]uint64{tracefmt.EvCPUSample, 4000, 2, 1, 2, 3},
		)...)
		w.batch(2, twMAny, 9500, samples).eog()
		_, end, err := twWindow(t, w.b)
		require.NoError(t, err)
		require.Equal(t, wall2.Add(twUnit(4000-2000)).UnixNano(), end.UnixNano())
	})

	t.Run("ExperimentalBatchSkipped", func(t *testing.T) {
		w := twTwoGens(twHeader126)
		w.b = w.b[:len(w.b)-1]
		w.b = append(w.b, tracefmt.EvExperimentalBatch, 1) // experiment AllocFree
		w.b = binary.AppendUvarint(w.b, 2)
		w.b = binary.AppendUvarint(w.b, 3)
		w.b = binary.AppendUvarint(w.b, 9999)
		w.b = twPaddedUvarint(w.b, 3)
		w.b = append(w.b, 0xff, 0xff, 0xff)
		w.eog()
		start, end, err := twWindow(t, w.b)
		require.NoError(t, err)
		require.Equal(t, wantStart.UnixNano(), start.UnixNano())
		require.Equal(t, wantEnd.UnixNano(), end.UnixNano())
	})

	t.Run("ManyMs", func(t *testing.T) {
		// More Ms than the per-M table holds: every batch is decoded.
		w := newTWBuilder(twHeader126).batch(1, twMAny, 1000, twSync(twFreq, 0, twWall))
		for m := range uint64(500) {
			dt := uint64(10)
			if m == 137 {
				dt = 5000
			}
			w.batch(1, m+1, 1000+m, twEvents([]uint64{twEvProcEnd, 1}, []uint64{twEvProcEnd, dt}))
		}
		w.eog()
		start, end, err := twWindow(t, w.b)
		require.NoError(t, err)
		require.Equal(t, twWall.UnixNano(), start.UnixNano())
		require.Equal(t, twWall.Add(twUnit(137+1+5000)).UnixNano(), end.UnixNano())
	})

	for name, data := range map[string][]byte{
		"Empty":                 {},
		"Nil":                   nil,
		"ShortHeader":           []byte("go 1.26 trace"),
		"HeaderOnly":            []byte(twHeader126),
		"WrongVersion":          append([]byte("go 1.24 trace\x00\x00\x00"), twTwoGens(twHeader126).b[tracefmt.HeaderLen:]...),
		"NoEndOfGeneration":     bytes.TrimSuffix(twTwoGens(twHeader126).b, []byte{tracefmt.EvEndOfGeneration}),
		"LoneEndOfGeneration":   newTWBuilder(twHeader126).eog().b,
		"DoubleEndOfGeneration": twTwoGens(twHeader126).eog().b,
		"InterleavedGenerations": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, twSync(twFreq, 10, twWall)).
			batch(2, 1, 1100, nil).eog().b,
		"NoSync": newTWBuilder(twHeader126).
			batch(1, 1, 1100, twEvents([]uint64{twEvProcEnd, 1})).eog().b,
		"NoClockSnapshot": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, twEvents([]uint64{tracefmt.EvSync}, []uint64{tracefmt.EvFrequency, twFreq})).eog().b,
		"NoFrequency": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, twEvents([]uint64{tracefmt.EvSync}, []uint64{tracefmt.EvClockSnapshot, 1, 2, 3, 4})).eog().b,
		"ZeroFrequency": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, twSync(0, 10, twWall)).eog().b,
		"TwoSyncBatches": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, twSync(twFreq, 10, twWall)).
			batch(1, twMAny, 1001, twSync(twFreq, 10, twWall)).eog().b,
		"BadSyncEvent": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, append(twSync(twFreq, 10, twWall), twEvProcEnd, 1)).eog().b,
		"GenerationZero": newTWBuilder(twHeader126).
			batch(0, twMAny, 1000, twSync(twFreq, 10, twWall)).eog().b,
		"OversizedBatch": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, append(twSync(twFreq, 10, twWall), make([]byte, tracefmt.MaxBatchSize)...)).eog().b,
		"NotABatch": append([]byte(twHeader126), tracefmt.EvStacks, 1, 1, 1, 0),
		"BadEventInLastBatch": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, twSync(twFreq, 10, twWall)).
			batch(1, 1, 1100, twEvents([]uint64{twEvProcEnd, 1}, []uint64{tracefmt.EvEventBatch, 1})).eog().b,
		"TruncatedEvent": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, twSync(twFreq, 10, twWall)).
			batch(1, 1, 1100, []byte{twEvGoStart, 1, 0x80}).eog().b,
		"BadCPUSample": newTWBuilder(twHeader126).
			batch(1, twMAny, 1000, twSync(twFreq, 10, twWall)).
			batch(1, twMAny, 1100, []byte{tracefmt.EvCPUSamples, tracefmt.EvCPUSample, 1, 2}).eog().b,
		"VarintOverflow": append([]byte(twHeader126), tracefmt.EvEventBatch,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := twWindow(t, data)
			require.ErrorIs(t, err, errTraceFormat)
			t.Log(err)
		})
	}

	t.Run("RandomBytes", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for i := range 2000 {
			data := make([]byte, rng.IntN(4096))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			if i%2 == 0 && len(data) >= tracefmt.HeaderLen {
				copy(data, twHeader126)
			}
			_, _, err := twWindow(t, data)
			require.ErrorIs(t, err, errTraceFormat)
		}
	})
}

// Seed corpus files derived from a real snapshot, under
// testdata/fuzz/FuzzTraceWindow. Regenerate them with
//
//	OTELFR_WRITE_FUZZ_SEEDS=1 go test -run TestTraceWindowFuzzSeeds ./otelfr/
const (
	twSeedPrefix  = "real-prefix"     // the first 4 KiB of a snapshot: truncated
	twSeedReduced = "real-reduced"    // a snapshot cut down to a few small batches
	twSeedDir     = "FuzzTraceWindow" // under testdata/fuzz
)

// twReduce cuts a real snapshot down to a valid trace of a few KiB: per
// generation its sync batch, the first few events of a few event batches and
// of a CPU sample batch, and the end-of-generation marker.
func twReduce(tb testing.TB, data []byte) []byte {
	tb.Helper()
	out := bytes.Clone(data[:tracefmt.HeaderLen])
	var events, cpu int
	for p := tracefmt.HeaderLen; p < len(data); {
		if data[p] == tracefmt.EvEndOfGeneration {
			out = append(out, tracefmt.EvEndOfGeneration)
			events, cpu = 0, 0
			p++
			continue
		}
		h, next, err := tracefmt.ReadBatch(data, p)
		require.NoError(tb, err)
		var payload []byte
		switch h.Kind() {
		case tracefmt.KindSync:
			payload = h.Payload
		case tracefmt.KindEvents:
			if events < 3 {
				events++
				payload = twFirstEvents(h.Payload, 8)
			}
		case tracefmt.KindCPUSamples:
			if cpu < 1 {
				cpu++
				payload = h.Payload[:min(len(h.Payload), 1+3*12)]
				for {
					g := genScan{}
					if g.readCPUSamples(tracefmt.Batch{Payload: payload}, 0) == nil {
						break
					}
					payload = payload[:len(payload)-1]
				}
			}
		}
		if payload != nil {
			out = (&twBuilder{b: out}).batch(h.Gen, h.M, h.Ts, payload).b
		}
		p = next
	}
	return out
}

// twFirstEvents returns the first n events of an event batch payload.
func twFirstEvents(b []byte, n int) []byte {
	p := 0
	for range n {
		if p >= len(b) {
			break
		}
		args := timedEventArgs[b[p]]
		p++
		for range args {
			p = tracefmt.SkipUvarint(b, p)
		}
	}
	return b[:p]
}

func twSeedPath(name string) string {
	return filepath.Join("testdata", "fuzz", twSeedDir, name)
}

// TestTraceWindowFuzzSeeds checks the committed seed corpus, or rewrites it
// from a fresh snapshot when OTELFR_WRITE_FUZZ_SEEDS is set.
func TestTraceWindowFuzzSeeds(t *testing.T) {
	if os.Getenv("OTELFR_WRITE_FUZZ_SEEDS") != "" {
		snap := twRecord(t, 1200*time.Millisecond, 1, false, true)
		reduced := twReduce(t, snap.data)
		require.NoError(t, os.MkdirAll(filepath.Dir(twSeedPath(twSeedPrefix)), 0o755))
		for name, data := range map[string][]byte{
			twSeedPrefix:  snap.data[:4096],
			twSeedReduced: reduced,
		} {
			file := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			require.Less(t, len(file), 20<<10, name)
			require.NoError(t, os.WriteFile(twSeedPath(name), []byte(file), 0o644))
		}
	}
	read := func(name string) []byte {
		file, err := os.ReadFile(twSeedPath(name))
		if os.IsNotExist(err) {
			t.Skipf("no seed corpus: %v", err)
		}
		require.NoError(t, err)
		lines := strings.Split(string(file), "\n")
		require.Equal(t, "go test fuzz v1", lines[0])
		lit, ok := strings.CutPrefix(lines[1], "[]byte(")
		require.True(t, ok)
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		require.NoError(t, err)
		return []byte(s)
	}
	_, _, err := twWindow(t, read(twSeedPrefix))
	require.ErrorIs(t, err, errTraceFormat)
	start, end, err := twWindow(t, read(twSeedReduced))
	require.NoError(t, err)
	require.Greater(t, end.Sub(start), 500*time.Millisecond)
}

func FuzzTraceWindow(f *testing.F) {
	f.Add([]byte(nil))
	f.Add([]byte(twHeader126))
	f.Add(twTwoGens(twHeader126).b)
	f.Add(twTwoGens(twHeader125).b)
	f.Fuzz(func(t *testing.T, data []byte) {
		start, end, err := twWindow(t, data)
		if err != nil {
			require.ErrorIs(t, err, errTraceFormat)
			return
		}
		require.False(t, end.Before(start), "start %v, end %v", start, end)
		// Decoding every batch of the final generation may reject the
		// trace, but it cannot change where it starts.
		s, e, err := scanTraceWindow(data, decodeAll)
		if err == nil {
			require.True(t, s.Equal(start))
			require.False(t, e.Before(s))
		}
	})
}

func BenchmarkTraceWindow(b *testing.B) {
	snap := twRecord(b, 1200*time.Millisecond, runtime.GOMAXPROCS(0), true, false)
	data := snap.data
	b.Logf("snapshot: %.1f MiB", float64(len(data))/(1<<20))
	for _, bm := range []struct {
		name string
		mode decodeMode
	}{
		{"LastBatchPerM", decodeLastPerM},
		{"BaseTimestampsOnly", decodeNone},
		{"DecodeFinalGeneration", decodeAll},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := scanTraceWindow(data, bm.mode); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// twWindow returns traceWindow(data), after checking that a windowWriter
// finds the same window, or also fails, whether the trace comes whole or
// in chunks.
func twWindow(t testing.TB, data []byte) (start, end time.Time, err error) {
	t.Helper()
	start, end, err = traceWindow(data)
	for _, chunk := range []int{max(len(data), 1), 977} {
		var w windowWriter
		for p := 0; p < len(data); p += chunk {
			n, werr := w.Write(data[p:min(p+chunk, len(data))])
			require.NoError(t, werr, "a windowWriter never fails")
			require.Equal(t, min(chunk, len(data)-p), n)
		}
		s, e, serr := w.window()
		if err != nil {
			require.ErrorIs(t, serr, errTraceFormat, "in chunks of %d: traceWindow fails with %v", chunk, err)
			continue
		}
		require.NoError(t, serr, "in chunks of %d", chunk)
		require.True(t, s.Equal(start) && e.Equal(end), "in chunks of %d: %v..%v, traceWindow %v..%v", chunk, s, e, start, end)
	}
	// Through a buffered snapshotStream, whose scan keeps batches in the
	// staging buffer until each flush: written in pieces as the runtime
	// does, and read from a file as in disk mode.
	for _, read := range []bool{false, true} {
		var out poisoner
		st := snapshotStream{dst: &out, buf: make([]byte, 0, 1500)}
		st.win.lend = true
		if read {
			require.NoError(t, st.readFrom(bytes.NewReader(data), nil))
		} else {
			for p := 0; p < len(data); p += 700 {
				_, werr := st.Write(data[p:min(p+700, len(data))])
				require.NoError(t, werr)
			}
		}
		require.NoError(t, st.close())
		require.True(t, bytes.Equal(data, out.b), "the stream writes the trace as it came")
		s, e, serr := st.win.window()
		if err != nil {
			require.ErrorIs(t, serr, errTraceFormat, "streamed (read %v): traceWindow fails with %v", read, err)
			continue
		}
		require.NoError(t, serr, "streamed (read %v)", read)
		require.True(t, s.Equal(start) && e.Equal(end), "streamed (read %v): %v..%v, traceWindow %v..%v", read, s, e, start, end)
	}
	return start, end, err
}

// poisoner collects what is written to it, then overwrites the caller's
// slice, as the stream's next fill of its staging buffer would: a scan
// that kept a batch there past the flush sees garbage.
type poisoner struct{ b []byte }

func (p *poisoner) Write(b []byte) (int, error) {
	p.b = append(p.b, b...)
	for i := range b {
		//lint:ignore SA1023 the poison is the point: it breaks only a scan that keeps a batch in a buffer it gave away
		b[i] = 0xff
	}
	return len(b), nil
}
