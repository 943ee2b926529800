package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// escaper copies guest bytes to a terminal with every control character
// made visible, so that a guest cannot drive the terminal (move the cursor,
// rewrite the title, answer-back queries, switch character sets): ESC
// (and so every CSI and OSC sequence) and the other C0 controls become
// \xNN, C1 controls \u00NN, bytes that are not UTF-8 \xNN; \n and \t pass,
// and \r\n becomes \n. It is safe for concurrent use; it holds back at most
// the 3 bytes of a UTF-8 sequence, or a \r, cut by a Write boundary.
type escaper struct {
	mu    sync.Mutex
	w     io.Writer
	carry []byte
}

func newEscaper(w io.Writer) *escaper { return &escaper{w: w} }

// Write implements io.Writer; it reports len(p) when the escaped bytes were
// written.
func (e *escaper) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	data := append(e.carry, p...)
	var out strings.Builder
	n := escapeInto(&out, data, false)
	e.carry = append([]byte(nil), data[n:]...)
	if _, err := io.WriteString(e.w, out.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what Write held back, escaped as a final fragment.
func (e *escaper) Flush() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out strings.Builder
	escapeInto(&out, e.carry, true)
	e.carry = nil
	_, err := io.WriteString(e.w, out.String())
	return err
}

// escapeString escapes s as escaper does.
func escapeString(s string) string {
	var out strings.Builder
	escapeInto(&out, []byte(s), true)
	return out.String()
}

// escapeInto escapes data into out and returns how many bytes it consumed:
// all of them when final, else all but an incomplete tail.
func escapeInto(out *strings.Builder, data []byte, final bool) int {
	i := 0
	for i < len(data) {
		b := data[i]
		switch {
		case b == '\n' || b == '\t':
			out.WriteByte(b)
			i++
			continue
		case b == '\r':
			if i+1 == len(data) && !final {
				return i // a \n may follow in the next Write
			}
			if i+1 < len(data) && data[i+1] == '\n' {
				i++ // \r\n: the \n is written next
				continue
			}
			out.WriteString(`\r`)
			i++
			continue
		case b < 0x20 || b == 0x7f:
			fmt.Fprintf(out, `\x%02x`, b)
			i++
			continue
		case b < utf8.RuneSelf:
			out.WriteByte(b)
			i++
			continue
		}
		if !final && !utf8.FullRune(data[i:]) {
			return i
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(out, `\x%02x`, b)
		case r >= 0x80 && r <= 0x9f:
			fmt.Fprintf(out, `\u%04x`, r)
		default:
			out.Write(data[i : i+size])
		}
		i += size
	}
	return i
}
