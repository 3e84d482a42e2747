package hub

import (
	"sync"
	"time"
)

// Recovery pacing: Missed updates at most recoverBatch channels every
// recoverTick (1,000 channels a second), so a reconnect with many followed
// channels does not send every hold back to its origin in the same moment.
const (
	recoverBatch = 10
	recoverTick  = 10 * time.Millisecond
)

// recoverQueue holds the channels Missed has yet to update, each once, in
// the order they were reported.
type recoverQueue struct {
	mu      sync.Mutex
	pending map[string]struct{}
	order   []string
	running bool
}

// Missed tells the hub that channels may have missed items (a bus
// reconnected or dropped messages): their holds are updated as by a hint,
// so response holds re-request the origin and streams fetch their next
// link instead of silently keeping a gap. The updates are paced (see
// recoverBatch) by one goroutine that ends when the queue is empty; a
// channel reported again while queued is updated once.
func (h *Hub) Missed(channels []string) {
	q := &h.recover
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		q.pending = make(map[string]struct{})
	}
	for _, ch := range channels {
		if _, ok := q.pending[ch]; ok {
			continue
		}
		q.pending[ch] = struct{}{}
		q.order = append(q.order, ch)
	}
	if !q.running && len(q.order) > 0 {
		q.running = true
		go h.runRecover()
	}
}

// runRecover updates the queued channels, recoverBatch per recoverTick,
// until the queue is empty or the hub closes.
func (h *Hub) runRecover() {
	q := &h.recover
	tick := time.NewTicker(recoverTick)
	defer tick.Stop()
	for {
		q.mu.Lock()
		n := min(recoverBatch, len(q.order))
		batch := append([]string(nil), q.order[:n]...)
		q.order = q.order[n:]
		for _, ch := range batch {
			delete(q.pending, ch)
		}
		q.mu.Unlock()
		for _, ch := range batch {
			h.Update(ch)
		}
		q.mu.Lock()
		if len(q.order) == 0 || h.closed.Load() {
			q.order, q.pending, q.running = nil, nil, false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		<-tick.C
	}
}
