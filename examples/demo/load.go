package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxInFlight bounds the load generator's concurrent requests; a tick that
// finds them all busy is skipped, not queued.
const maxInFlight = 64

// generateLoad sends rate requests per second to the orders API at base
// for d, or until ctx ends, then waits for the requests in flight: nine in
// ten place an order, the rest read the catalog. It logs a summary when
// done.
//
// Requests in flight are not cancelled when the load stops: a request cut
// short would fail its spans and show up as an error anomaly that no
// incident caused. The client's timeout bounds them instead.
func generateLoad(ctx context.Context, base string, rate float64, d time.Duration) {
	reqCtx := context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	rate = min(rate, 1000)
	client := &http.Client{Timeout: 10 * time.Second}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range skus {
			if !yield(k) {
				return
			}
		}
	})

	var (
		wg                    sync.WaitGroup
		sent, failed, skipped atomic.Int64
		sem                   = make(chan struct{}, maxInFlight)
		tick                  = time.NewTicker(time.Duration(float64(time.Second) / rate))
	)
	defer tick.Stop()
	log.Printf("load: %g requests/s to %s for %v", rate, base, d)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			log.Printf("load: done: %d requests, %d failed, %d skipped (too many in flight)", sent.Load(), failed.Load(), skipped.Load())
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			skipped.Add(1)
			continue
		}
		sent.Add(1)
		wg.Go(func() {
			defer func() { <-sem }()
			var req *http.Request
			if rand.N(10) == 0 {
				req, _ = http.NewRequestWithContext(reqCtx, http.MethodGet, base+"/catalog", nil)
			} else {
				body, _ := json.Marshal(orderRequest{SKU: names[rand.N(len(names))], Qty: 1 + rand.N(3)})
				req, _ = http.NewRequestWithContext(reqCtx, http.MethodPost, base+"/orders", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 400 {
				failed.Add(1)
			}
		})
	}
}
