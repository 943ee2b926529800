package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
)

// chunkConn is a net.Conn whose reads return at most the next chunk size of
// data, cycling through sizes, then io.EOF.
type chunkConn struct {
	net.Conn
	data  []byte
	sizes []int
	i     int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), c.sizes[c.i%len(c.sizes)])
	c.i++
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func rawFrame(typ byte, body []byte) []byte {
	f := make([]byte, frameHeaderLen, frameHeaderLen+len(body))
	binary.BigEndian.PutUint32(f, uint32(len(body)))
	binary.BigEndian.PutUint32(f[4:], 1)
	f[8] = typ
	return append(f, body...)
}

// TestGuardConnChunks checks that the frame guard hands out exactly the
// valid frames however reads split them, and nothing from an invalid
// header on.
func TestGuardConnChunks(t *testing.T) {
	var valid []byte
	for _, n := range []int{0, 1, 9, 10, 11, 300, 0, 5000} {
		valid = append(valid, rawFrame(byte(1+n%3), bytes.Repeat([]byte{byte(n)}, n))...)
	}
	bad := rawFrame(9, []byte("after the bad header"))
	tests := []struct {
		name    string
		input   []byte
		want    []byte
		wantErr error
	}{
		{"valid", valid, valid, io.EOF},
		{"bad header", append(append([]byte(nil), valid...), bad...), valid, errMalformedFrame},
		{"truncated header", valid[:len(valid)-5000-4], valid[:len(valid)-5000-frameHeaderLen], io.ErrUnexpectedEOF},
		{"truncated body", valid[:len(valid)-1], valid[:len(valid)-1], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		for _, sizes := range [][]int{{1}, {3}, {10}, {7, 13}, {4096}, {1 << 20}} {
			for _, bufSize := range []int{1, 10, 4096} {
				t.Run(fmt.Sprint(tt.name, sizes, bufSize), func(t *testing.T) {
					g := &guardConn{Conn: &chunkConn{data: tt.input, sizes: sizes}}
					var got []byte
					buf := make([]byte, bufSize)
					var err error
					for range 100000 {
						var n int
						n, err = g.Read(buf)
						got = append(got, buf[:n]...)
						if err != nil {
							break
						}
					}
					if !bytes.Equal(got, tt.want) {
						t.Errorf("got %d bytes, want %d", len(got), len(tt.want))
					}
					if !errors.Is(err, tt.wantErr) {
						t.Errorf("err %v, want %v", err, tt.wantErr)
					}
				})
			}
		}
	}
}
