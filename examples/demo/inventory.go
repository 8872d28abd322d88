package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
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
	cold  *coldStorage
	mu    sync.Mutex
	stock map[string]int
}

func newInventory(inc *incidents, cold *coldStorage) *inventory {
	v := &inventory{inc: inc, cold: cold, stock: make(map[string]int, len(skus))}
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
	if id, ok := v.inc.take(downstreamErrors); ok {
		v.inc.strike(r.Context(), downstreamErrors, id)
		defer v.inc.beginStrike(downstreamErrors, id)()
		http.Error(w, "warehouse database unavailable", http.StatusServiceUnavailable)
		return
	}
	if id, ok := v.inc.take(slowDownstream); ok {
		// A read that misses every cache and goes to cold storage. It is
		// only slow: the stock comes from the map below either way.
		v.inc.strike(r.Context(), slowDownstream, id)
		end := v.inc.beginStrike(slowDownstream, id)
		_ = v.cold.read(r.Context(), r.URL.Query().Get("sku"))
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

// coldStorage is where the inventory's reads go when they miss every
// cache: a store at the other end of a TCP connection, which takes
// slowReadDelay to answer. Here it is a listener on loopback in the same
// process, so that a slow read is a real wait on the network.
type coldStorage struct {
	l  net.Listener
	wg sync.WaitGroup
}

// listenColdStorage starts the store on a free loopback port.
func listenColdStorage() (*coldStorage, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &coldStorage{l: l}
	c.wg.Go(c.serve)
	return c, nil
}

// serve answers each connection's one request line after slowReadDelay.
func (c *coldStorage) serve() {
	for {
		conn, err := c.l.Accept()
		if err != nil {
			return // closed
		}
		c.wg.Go(func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(slowReadDelay + 5*time.Second))
			if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
				return
			}
			time.Sleep(slowReadDelay)
			_, _ = conn.Write([]byte("ok\n"))
		})
	}
}

// read fetches sku's record from the store, or gives up when ctx ends.
func (c *coldStorage) read(ctx context.Context, sku string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.l.Addr().String())
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write([]byte(sku + "\n")); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err == nil && reply != "ok\n" {
		err = errors.New("cold storage: unexpected reply")
	}
	return err
}

// close stops the store once the reads in progress are answered.
func (c *coldStorage) close() {
	c.l.Close()
	c.wg.Wait()
}
