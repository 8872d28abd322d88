package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// inventory is the downstream service: it reserves stock for orders. It
// listens on its own address, as it would in its own process, and the
// orders API calls it over HTTP with the trace context propagated.
type inventory struct {
	inc   *incidents
	mu    sync.Mutex
	stock map[string]int
}

func newInventory(inc *incidents) *inventory {
	v := &inventory{inc: inc, stock: make(map[string]int, len(skus))}
	for sku := range skus {
		v.stock[sku] = 1000
	}
	return v
}

func (v *inventory) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reserve", v.reserve)
	return v.inc.tag(mux)
}

func (v *inventory) reserve(w http.ResponseWriter, r *http.Request) {
	if v.inc.take(downstreamErrors) {
		defer v.inc.begin(downstreamErrors)()
		http.Error(w, "warehouse database unavailable", http.StatusServiceUnavailable)
		return
	}
	if v.inc.take(slowDownstream) {
		// A read that misses every cache and goes to cold storage.
		end := v.inc.begin(slowDownstream)
		t := time.NewTimer(slowReadDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
		end()
	}

	sku := r.URL.Query().Get("sku")
	qty, err := strconv.Atoi(r.URL.Query().Get("qty"))
	if err != nil || qty < 1 {
		http.Error(w, "want sku and qty >= 1", http.StatusBadRequest)
		return
	}
	v.mu.Lock()
	left, ok := v.stock[sku]
	if ok {
		if left < qty {
			left += 1000 // restocked
		}
		left -= qty
		v.stock[sku] = left
	}
	v.mu.Unlock()
	if !ok {
		http.Error(w, "unknown sku", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"sku": sku, "left": left})
}
