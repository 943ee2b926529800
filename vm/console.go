package vm

import (
	"io"
	"sync"
)

// consoleTailSize is how much of the VMM's output a Machine keeps for errors.
const consoleTailSize = 64 << 10

// console keeps the last consoleTailSize bytes written to it and copies
// everything to an optional writer. It is safe for concurrent use.
type console struct {
	mu   sync.Mutex
	buf  []byte // ring of at most consoleTailSize bytes
	next int    // where the next byte goes once buf is full
	copy io.Writer
}

func newConsole(copy io.Writer) *console { return &console{copy: copy} }

// Write implements io.Writer; it never fails, even when the copy does.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.copy != nil {
		if _, err := c.copy.Write(p); err != nil {
			c.copy = nil // a broken copy must not stall the VMM
		}
	}
	data := p
	if len(data) > consoleTailSize {
		data = data[len(data)-consoleTailSize:]
	}
	for len(data) > 0 {
		if len(c.buf) < consoleTailSize {
			n := min(consoleTailSize-len(c.buf), len(data))
			c.buf = append(c.buf, data[:n]...)
			data = data[n:]
			continue
		}
		n := copy(c.buf[c.next:], data)
		c.next = (c.next + n) % consoleTailSize
		data = data[n:]
	}
	return len(p), nil
}

// Tail returns up to n of the most recent bytes.
func (c *console) Tail(n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	ordered := append(append([]byte(nil), c.buf[c.next:]...), c.buf[:c.next]...)
	if len(ordered) > n {
		ordered = ordered[len(ordered)-n:]
	}
	return ordered
}
