package spanprocessor_test

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// recordingProcessor is the wrapped processor: it records what it gets.
type recordingProcessor struct {
	mu        sync.Mutex
	cond      *sync.Cond
	ended     []sdktrace.ReadOnlySpan
	started   int
	flushes   int
	shutdowns int
	// block, if set, makes OnEnd wait on it for spans it matches.
	block func(sdktrace.ReadOnlySpan) <-chan struct{}
}

func newRecordingProcessor() *recordingProcessor {
	r := &recordingProcessor{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recordingProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {
	r.mu.Lock()
	r.started++
	r.mu.Unlock()
}

func (r *recordingProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if r.block != nil {
		if ch := r.block(s); ch != nil {
			<-ch
		}
	}
	r.mu.Lock()
	r.ended = append(r.ended, s)
	r.cond.Broadcast()
	r.mu.Unlock()
}

func (r *recordingProcessor) ForceFlush(context.Context) error {
	r.mu.Lock()
	r.flushes++
	r.mu.Unlock()
	return nil
}

func (r *recordingProcessor) Shutdown(context.Context) error {
	r.mu.Lock()
	r.shutdowns++
	r.mu.Unlock()
	return nil
}

// spans returns what OnEnd received, by span name.
func (r *recordingProcessor) spans() map[string]sdktrace.ReadOnlySpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]sdktrace.ReadOnlySpan, len(r.ended))
	for _, s := range r.ended {
		m[s.Name()] = s
	}
	return m
}

// waitFor blocks until OnEnd has received n spans.
func (r *recordingProcessor) waitFor(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.ended) < n {
		r.cond.Wait()
	}
}

func (r *recordingProcessor) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ended)
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) (string, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value.String(), true
		}
	}
	return "", false
}
