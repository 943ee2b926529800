package guest

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// chunkConn is a connection whose reads return at most the next chunk size
// of data, cycling through sizes, then io.EOF; what is written to it is
// collected.
type chunkConn struct {
	data  []byte
	sizes []int
	i     int

	mu  sync.Mutex
	out bytes.Buffer
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

func (c *chunkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *chunkConn) Close() error { return nil }

// TestServeConnChunks checks that the server answers exactly the requests
// before an invalid header however reads split the frames, and nothing
// from the invalid header on.
func TestServeConnChunks(t *testing.T) {
	var valid []byte
	for _, id := range []uint32{1, 3, 5} {
		valid = append(valid, requestFrame(id, wire.ServiceName, wire.MethodPing, &agentpb.PingRequest{})...)
	}
	valid = append(valid, frame(7, wire.TypeData, bytes.Repeat([]byte{7}, 5000))...) // no such stream: dropped
	bad := frame(9, 9, nil)
	after := requestFrame(11, wire.ServiceName, wire.MethodPing, &agentpb.PingRequest{})
	tests := []struct {
		name  string
		input []byte
		want  []uint32 // streams answered
	}{
		{"valid", valid, []uint32{1, 3, 5}},
		{"bad header", append(append(append([]byte(nil), valid...), bad...), after...), []uint32{1, 3, 5}},
		{"truncated header", append(append([]byte(nil), valid...), after[:4]...), []uint32{1, 3, 5}},
		{"truncated body", append(append([]byte(nil), valid...), after[:len(after)-1]...), []uint32{1, 3, 5}},
	}
	for _, tt := range tests {
		for _, sizes := range [][]int{{1}, {3}, {10}, {7, 13}, {4096}, {1 << 20}} {
			t.Run(fmt.Sprint(tt.name, sizes), func(t *testing.T) {
				c := &chunkConn{data: tt.input, sizes: sizes}
				(&Server{}).serveConn(c)
				var got []uint32
				for c.out.Len() > 0 {
					id, resp := readResponse(t, &c.out)
					if resp.Status.Code != wire.OK {
						t.Errorf("stream %d: %v", id, resp.Status)
					}
					got = append(got, id)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("answered streams %v, want %v", got, tt.want)
				}
			})
		}
	}
}
