package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// How hard the incidents strike. Each is sized to exceed the default
// latency threshold (100ms) by a margin on a 2-core machine.
const (
	catalogRefreshHold = 250 * time.Millisecond // lock contention
	bulkInvoiceLines   = 100_000                // GC pressure: small objects per layout
	bulkInvoiceMinTime = 150 * time.Millisecond // ... and how long it lasts at least
	slowReadDelay      = 350 * time.Millisecond // slow downstream
	fraudFanout        = 48                     // CPU saturation: goroutines per P
	fraudWork          = 8                      // ... each with this many ms of CPU
	fraudMainWork      = 32                     // ... and the request's own, in ms
	reconcileJobs      = 120                    // backlog: jobs in a burst
	reconcileJobTime   = 5 * time.Millisecond   // ... each taking a worker this long
	downstreamFailures = 3                      // errors: failed inventory requests
)

const (
	fulfilWorkers  = 2
	fulfilQueueCap = 256
	packTime       = time.Millisecond // a worker's time for a normal order
)

// skus are what the catalog sells, with prices in cents.
var skus = map[string]int64{
	"espresso-beans": 1450,
	"grinder":        8900,
	"kettle":         4200,
	"filter-papers":  350,
	"mug":            1200,
	"scale":          2900,
}

// orders is the orders API: it prices an order from the catalog, reserves
// stock from the inventory service, scores it for fraud, renders its
// invoice and hands it to the fulfilment workers.
type orders struct {
	inc          *incidents
	client       *http.Client // instrumented
	inventoryURL string
	catalog      *catalog
	fulfil       *fulfilment
	itersPerMs   int // SHA-256 rounds per millisecond of CPU here
	nextID       atomic.Int64
}

func newOrders(inc *incidents, client *http.Client, inventoryURL string) *orders {
	return &orders{
		inc:          inc,
		client:       client,
		inventoryURL: inventoryURL,
		catalog:      newCatalog(),
		fulfil:       newFulfilment(fulfilWorkers),
		itersPerMs:   calibrate(),
	}
}

// close stops the fulfilment workers; call it once no request runs.
func (s *orders) close() { s.fulfil.close() }

func (s *orders) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.place)
	mux.HandleFunc("GET /catalog", s.listCatalog)
	return s.inc.tag(mux)
}

type orderRequest struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

type orderResponse struct {
	ID         int64  `json:"id"`
	SKU        string `json:"sku"`
	Qty        int    `json:"qty"`
	TotalCents int64  `json:"total_cents"`
}

func (s *orders) place(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req orderRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil || req.Qty < 1 || req.Qty > 100 {
		http.Error(w, "want {\"sku\": ..., \"qty\": 1..100}", http.StatusBadRequest)
		return
	}
	price, ok := s.catalog.price(req.SKU)
	if !ok {
		http.Error(w, "unknown sku", http.StatusNotFound)
		return
	}
	if err := s.reserve(ctx, req); err != nil {
		trace.SpanFromContext(ctx).RecordError(err)
		http.Error(w, "reserving stock: "+err.Error(), http.StatusBadGateway)
		return
	}

	if s.inc.take(cpuSaturation) {
		end := s.inc.begin(cpuSaturation)
		s.scoreFraudDeep()
		end()
	} else {
		spin(s.itersPerMs / 5)
	}

	total := price * int64(req.Qty)
	if s.inc.take(gcPressure) {
		end := s.inc.begin(gcPressure)
		total = renderBulkInvoice(req.SKU, price)
		end()
	}

	if err := s.fulfil.submit(ctx, packTime); err != nil {
		http.Error(w, "fulfilment: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(orderResponse{ID: s.nextID.Add(1), SKU: req.SKU, Qty: req.Qty, TotalCents: total})
}

func (s *orders) listCatalog(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.catalog.list())
}

// reserve asks the inventory service for the order's stock.
func (s *orders) reserve(ctx context.Context, req orderRequest) error {
	u := s.inventoryURL + "/reserve?" + url.Values{"sku": {req.SKU}, "qty": {strconv.Itoa(req.Qty)}}.Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("inventory: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// scoreFraudDeep runs the deep fraud model: one goroutine per feature
// group, fraudFanout of them per P, each with fraudWork ms of CPU, while
// the request's goroutine scores the main model, fraudMainWork ms. They
// all become runnable at once, so every goroutine of the process waits its
// turn for a core: the request's, preempted after its first time slice,
// behind the feature groups, and other requests' too.
func (s *orders) scoreFraudDeep() {
	var wg sync.WaitGroup
	for range fraudFanout * runtime.GOMAXPROCS(0) {
		wg.Go(func() { spin(fraudWork * s.itersPerMs) })
	}
	spin(fraudMainWork * s.itersPerMs)
	wg.Wait()
}

// spin burns CPU: n rounds of SHA-256.
func spin(n int) [32]byte {
	var d [32]byte
	for range n {
		d = sha256.Sum256(d[:])
	}
	return d
}

// calibrate measures how many rounds of spin take a millisecond here: the
// best of a few short runs, so that other processes busy at start-up do
// not make the incidents smaller than intended.
func calibrate() int {
	const rounds = 1000
	best := time.Duration(1<<63 - 1)
	for range 5 {
		start := time.Now()
		spin(rounds)
		best = min(best, time.Since(start))
	}
	return max(int(rounds*time.Millisecond/max(best, 1)), 1)
}

// invoiceLine is a line of an invoice as the layout engine holds it: a
// cell per column, each pointing at its text, and the line before it.
type invoiceLine struct {
	prev  *invoiceLine
	cells [len(invoiceColumns)]*string
	cents int64
}

// invoiceColumns are the texts of a bulk invoice's columns but the SKU.
var invoiceColumns = [...]string{
	"", "unit", "1", "EUR", "VAT 20%", "warehouse A", "standard shipping",
	"net 30", "no discount", "batch 2026-11", "grade A", "sealed", "boxed", "insured",
}

// renderBulkInvoice renders the invoice of a bulk customer: a line per
// unit, each a small record full of pointers, rebuilt for each page
// layout. It is an allocation burst of the kind that costs the garbage
// collector the most: a fast stream of pointer-dense objects, so that mark
// phases run back to back and this goroutine assists them. On a fast
// machine it lays out more pages, so that it stays slow enough to be an
// anomaly.
func renderBulkInvoice(sku string, cents int64) int64 {
	columns := invoiceColumns
	columns[0] = sku
	start := time.Now()
	var total int64
	for layout := 0; layout < 64 && (layout < 4 || time.Since(start) < bulkInvoiceMinTime); layout++ {
		var last *invoiceLine
		for range bulkInvoiceLines {
			l := &invoiceLine{prev: last, cents: cents}
			for i := range l.cells {
				l.cells[i] = &columns[i]
			}
			last = l
		}
		total = 0
		for l := last; l != nil; l = l.prev {
			total += l.cents
		}
	}
	return total
}

// catalog holds the prices, behind one lock.
type catalog struct {
	mu     sync.Mutex
	prices map[string]int64
	digest [32]byte // of the supplier feed the prices came from
}

func newCatalog() *catalog {
	c := &catalog{prices: make(map[string]int64, len(skus))}
	for k, v := range skus {
		c.prices[k] = v
	}
	return c
}

func (c *catalog) price(sku string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.prices[sku]
	return p, ok
}

func (c *catalog) list() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.prices))
	for k, v := range c.prices {
		out[k] = v
	}
	return out
}

// refresh re-reads the supplier feed and reprices the catalog, all under
// the lock: the slow part (verifying the feed, here hashing for hold) makes
// every order that needs a price wait.
func (c *catalog) refresh(hold time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for deadline := time.Now().Add(hold); time.Now().Before(deadline); {
		c.digest = sha256.Sum256(c.digest[:])
	}
	for sku, base := range skus {
		c.prices[sku] = base + int64(c.digest[len(sku)%len(c.digest)]%5) - 2
	}
}

// fulfilment is a fixed pool of workers fed by a bounded queue.
type fulfilment struct {
	jobs chan job
	wg   sync.WaitGroup
}

type job struct {
	work time.Duration   // stands for the packing and shipping calls
	done chan<- struct{} // closed when done; nil if nobody waits
}

func newFulfilment(workers int) *fulfilment {
	f := &fulfilment{jobs: make(chan job, fulfilQueueCap)}
	for range workers {
		f.wg.Go(func() {
			for j := range f.jobs {
				time.Sleep(j.work)
				if j.done != nil {
					close(j.done)
				}
			}
		})
	}
	return f
}

// submit queues a job and waits for a worker to finish it.
func (f *fulfilment) submit(ctx context.Context, work time.Duration) error {
	done := make(chan struct{})
	select {
	case f.jobs <- job{work: work, done: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconcile queues a burst of reconciliation jobs, the nightly batch run
// in the daytime, and waits until the workers have worked through them:
// orders queued meanwhile wait behind the whole burst.
func (f *fulfilment) reconcile(ctx context.Context) {
	for range reconcileJobs - 1 {
		select {
		case f.jobs <- job{work: reconcileJobTime}:
		case <-ctx.Done():
			return
		}
	}
	_ = f.submit(ctx, reconcileJobTime) // fails only when ctx ends
}

// close stops the workers once they have finished the queued jobs.
func (f *fulfilment) close() {
	close(f.jobs)
	f.wg.Wait()
}
