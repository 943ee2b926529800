package sandbox

import "sync"

// ring keeps the last size bytes written to it, counting what it dropped.
// It is safe for concurrent use.
type ring struct {
	mu      sync.Mutex
	buf     []byte // len == cap == size once full
	size    int
	next    int // where the next byte goes once full
	dropped int64
}

func newRing(size int) *ring { return &ring{size: size} }

// Write keeps the tail of p; it never fails.
func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if len(p) > r.size {
		r.dropped += int64(len(p) - r.size)
		p = p[len(p)-r.size:]
	}
	if room := r.size - len(r.buf); room > 0 {
		k := min(room, len(p))
		r.buf = append(r.buf, p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 { // full: overwrite the oldest bytes
		k := copy(r.buf[r.next:], p)
		r.dropped += int64(k)
		r.next = (r.next + k) % r.size
		p = p[k:]
	}
	return n, nil
}

// Bytes returns a copy of what the ring holds, oldest first, and how many
// bytes were dropped before it.
func (r *ring) Bytes() ([]byte, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	out = append(out, r.buf[:r.next]...)
	return out, r.dropped
}
