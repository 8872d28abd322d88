// Command crashchild is the program that otelfr's crash tests run and kill:
// it records in disk mode, serves spans under load, keeps a few spans open
// and prints their IDs, then dies as told (-die): waiting to be killed
// ("kill"), panicking ("panic"), running out of address space ("oom",
// under the RLIMIT_AS its parent sets) or growing until the kernel's OOM
// killer ends it ("grow", in a memory cgroup its parent makes). It is built without the race detector,
// whose shadow memory no address-space limit leaves room for.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

func main() {
	dir := flag.String("dir", "", "the disk ring's directory")
	die := flag.String("die", "kill", "how to die: kill, panic or oom")
	after := flag.Duration("after", 7500*time.Millisecond, "when to panic or run out of memory")
	flag.Parse()

	rec, err := otelfr.Start(otelfr.WithDisk(*dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = rec // never stopped: the process dies with its ring open
	sdk := sdktrace.NewTracerProvider()
	tr := otelfr.WrapTracerProvider(sdk).Tracer("crashchild")
	started := time.Now()

	// The load: short spans on four goroutines, each with a little work.
	var sink sync.Map
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				_, s := tr.Start(context.Background(), "request")
				sink.Store(g, make([]byte, 4096))
				time.Sleep(500 * time.Microsecond)
				s.End()
			}
		}()
	}
	// The spans open at the crash, started once the load runs, on
	// goroutines that then block forever.
	time.Sleep(1500 * time.Millisecond)
	for i := range 3 {
		_, s := tr.Start(context.Background(), fmt.Sprintf("held-%d", i))
		sc := s.SpanContext()
		fmt.Printf("open %s %s\n", sc.TraceID(), sc.SpanID())
	}
	fmt.Println("ready")

	time.Sleep(time.Until(started.Add(*after)))
	switch *die {
	case "panic":
		panic("crashchild: deliberate panic")
	case "oom":
		var hold [][]byte
		for {
			// Fresh from the OS, never touched: address space, not memory.
			hold = append(hold, make([]byte, 64<<20))
		}
	case "grow":
		// Memory, touched, until the kernel's OOM killer ends it.
		var hold [][]byte
		for {
			b := make([]byte, 16<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			hold = append(hold, b)
		}
	}
	select {} // until killed
}
