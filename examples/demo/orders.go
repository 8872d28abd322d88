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
	fraudMainWork      = 2                      // ... then the main model over their scores, in ms
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
	price, ok, refresh := s.catalog.price(req.SKU)
	s.inc.strike(ctx, lockContention, refresh)
	if !ok {
		http.Error(w, "unknown sku", http.StatusNotFound)
		return
	}
	if err := s.reserve(ctx, req); err != nil {
		trace.SpanFromContext(ctx).RecordError(err)
		http.Error(w, "reserving stock: "+err.Error(), http.StatusBadGateway)
		return
	}

	if id, ok := s.inc.take(cpuSaturation); ok {
		s.inc.strike(ctx, cpuSaturation, id)
		end := s.inc.beginStrike(cpuSaturation, id)
		s.scoreFraudDeep()
		end()
	} else {
		spin(s.itersPerMs / 5)
	}

	total := price * int64(req.Qty)
	if id, ok := s.inc.take(gcPressure); ok {
		s.inc.strike(ctx, gcPressure, id)
		end := s.inc.beginStrike(gcPressure, id)
		total = renderBulkInvoice(req.SKU, price)
		end()
	}

	burst, err := s.fulfil.submit(ctx, job{work: packTime})
	s.inc.strike(ctx, queueBacklog, burst)
	if err != nil {
		http.Error(w, "fulfilment: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(orderResponse{ID: s.nextID.Add(1), SKU: req.SKU, Qty: req.Qty, TotalCents: total})
}

func (s *orders) listCatalog(w http.ResponseWriter, r *http.Request) {
	list, refresh := s.catalog.list()
	s.inc.strike(r.Context(), lockContention, refresh)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
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
// group, fraudFanout of them per P, each with fraudWork ms of CPU, then
// the main model over their scores on the request's goroutine,
// fraudMainWork ms. The feature groups all become runnable at once, so
// every goroutine of the process waits its turn for a core: the feature
// groups, which the request waits for, and other requests too.
func (s *orders) scoreFraudDeep() {
	var wg sync.WaitGroup
	for range fraudFanout * runtime.GOMAXPROCS(0) {
		wg.Go(func() { spin(fraudWork * s.itersPerMs) })
	}
	wg.Wait()
	spin(fraudMainWork * s.itersPerMs)
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

	// For the incident log: the refresh holding the lock (its incident's
	// ID, 0 when none), the last one, and how many have ended.
	refreshing, lastRefresh, refreshed atomic.Int64
}

func newCatalog() *catalog {
	c := &catalog{prices: make(map[string]int64, len(skus))}
	for k, v := range skus {
		c.prices[k] = v
	}
	return c
}

// lockWait is what a caller that found the lock taken saw before it
// waited: the refresh holding it, if any, and how many had ended.
type lockWait struct {
	waited        bool
	holder, ended int64
}

// tryLock takes the lock if it is free; otherwise it returns what the
// caller needs to tell, once it has the lock, whether it waited for a
// refresh (waitedFor).
func (c *catalog) tryLock() (lockWait, bool) {
	if c.mu.TryLock() {
		return lockWait{}, true
	}
	return lockWait{true, c.refreshing.Load(), c.refreshed.Load()}, false
}

// waitedFor returns the ID of the refresh that a caller which waited as w
// says waited for: the one holding the lock when it began, else one that
// ended meanwhile; 0 if none. The incident struck that caller's request.
func (c *catalog) waitedFor(w lockWait) int64 {
	if !w.waited {
		return 0
	}
	if w.holder == 0 && c.refreshed.Load() != w.ended {
		return c.lastRefresh.Load()
	}
	return w.holder
}

// price returns the price of sku, and the refresh it waited for, if any.
// (The lock is taken here rather than in a helper, so that a diagnosis
// names price as the place that waited.)
func (c *catalog) price(sku string) (int64, bool, int64) {
	w, locked := c.tryLock()
	if !locked {
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	p, ok := c.prices[sku]
	return p, ok, c.waitedFor(w)
}

// list returns the prices, and the refresh it waited for, if any.
func (c *catalog) list() (map[string]int64, int64) {
	w, locked := c.tryLock()
	if !locked {
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.prices))
	for k, v := range c.prices {
		out[k] = v
	}
	return out, c.waitedFor(w)
}

// refresh re-reads the supplier feed and reprices the catalog, all under
// the lock: the slow part (verifying the feed, here hashing for hold) makes
// every order that needs a price wait. id is the incident's.
func (c *catalog) refresh(hold time.Duration, id int64) {
	c.mu.Lock()
	c.refreshing.Store(id)
	for deadline := time.Now().Add(hold); time.Now().Before(deadline); {
		c.digest = sha256.Sum256(c.digest[:])
	}
	for sku, base := range skus {
		c.prices[sku] = base + int64(c.digest[len(sku)%len(c.digest)]%5) - 2
	}
	c.refreshing.Store(0)
	c.lastRefresh.Store(id)
	c.refreshed.Add(1)
	c.mu.Unlock()
}

// fulfilment is a fixed pool of workers fed by a bounded queue.
type fulfilment struct {
	jobs chan job
	wg   sync.WaitGroup
	// For the incident log: the reconciliation burst last queued (its
	// incident's ID), and how many of its jobs are queued or running.
	burst, burstLeft atomic.Int64
}

type job struct {
	work  time.Duration   // stands for the packing and shipping calls
	done  chan<- struct{} // closed when done; nil if nobody waits
	burst bool            // a reconciliation job
}

func newFulfilment(workers int) *fulfilment {
	f := &fulfilment{jobs: make(chan job, fulfilQueueCap)}
	for range workers {
		f.wg.Go(func() {
			for j := range f.jobs {
				time.Sleep(j.work)
				if j.burst {
					f.burstLeft.Add(-1)
				}
				if j.done != nil {
					close(j.done)
				}
			}
		})
	}
	return f
}

// submit queues j and waits for a worker to finish it. It returns the ID
// of the reconciliation burst the job queued behind, if any, else 0.
func (f *fulfilment) submit(ctx context.Context, j job) (burst int64, err error) {
	done := make(chan struct{})
	j.done = done
	if f.burstLeft.Load() > 0 {
		burst = f.burst.Load()
	}
	select {
	case f.jobs <- j:
	case <-ctx.Done():
		return burst, ctx.Err()
	}
	select {
	case <-done:
		return burst, nil
	case <-ctx.Done():
		return burst, ctx.Err()
	}
}

// reconcile queues a burst of reconciliation jobs, the nightly batch run
// in the daytime, and waits until the workers have worked through them:
// orders queued meanwhile wait behind the whole burst. id is the
// incident's.
func (f *fulfilment) reconcile(ctx context.Context, id int64) {
	f.burst.Store(id)
	f.burstLeft.Add(reconcileJobs)
	for i := range reconcileJobs - 1 {
		select {
		case f.jobs <- job{work: reconcileJobTime, burst: true}:
		case <-ctx.Done():
			f.burstLeft.Add(-int64(reconcileJobs - i))
			return
		}
	}
	_, _ = f.submit(ctx, job{work: reconcileJobTime, burst: true}) // fails only when ctx ends
}

// close stops the workers once they have finished the queued jobs.
func (f *fulfilment) close() {
	close(f.jobs)
	f.wg.Wait()
}
