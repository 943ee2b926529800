package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
)

// A synchronous prototype of ttrpc's unary calls, to price ttrpc's
// goroutine hops rather than its protocol: the same wire format (10-byte
// header, ttrpc.Request and ttrpc.Response protobufs) so it interoperates
// with ttrpc clients and servers, but the server handles a request on the
// goroutine that read it and writes the reply itself, and the client reads
// the reply on the calling goroutine. ttrpc's server instead starts a
// goroutine per call and hands the reply to a sender goroutine, and its
// client hands every reply from a receiver goroutine to the caller.

func protoMarshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

const (
	msgRequest  = 1
	msgResponse = 2
)

// syncConn reads and writes ttrpc frames synchronously.
type syncConn struct {
	c        net.Conn
	br       *bufio.Reader
	hdr      [10]byte
	in, out  []byte
	streamID uint32
}

func newSyncConn(c net.Conn) *syncConn {
	return &syncConn{c: c, br: bufio.NewReader(c), streamID: 1}
}

func (s *syncConn) readFrame() (typ byte, id uint32, body []byte, err error) {
	if _, err := io.ReadFull(s.br, s.hdr[:]); err != nil {
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(s.hdr[:4])
	if n > 4<<20 {
		return 0, 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	s.in = append(s.in[:0], make([]byte, n)...)
	if _, err := io.ReadFull(s.br, s.in); err != nil {
		return 0, 0, nil, err
	}
	return s.hdr[8], binary.BigEndian.Uint32(s.hdr[4:8]), s.in, nil
}

func (s *syncConn) writeFrame(typ byte, id uint32, m proto.Message) error {
	out, err := proto.MarshalOptions{}.MarshalAppend(append(s.out[:0], make([]byte, 10)...), m)
	if err != nil {
		return err
	}
	s.out = out
	binary.BigEndian.PutUint32(out[:4], uint32(len(out)-10))
	binary.BigEndian.PutUint32(out[4:8], id)
	out[8], out[9] = typ, 0
	_, err = s.c.Write(out)
	return err
}

// serveFrame answers ttrpc Ping requests synchronously.
func serveFrame(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			s := newSyncConn(c)
			for {
				typ, id, body, err := s.readFrame()
				if err != nil || typ != msgRequest {
					return
				}
				var req ttrpc.Request
				var ping agentpb.PingRequest
				if proto.Unmarshal(body, &req) != nil || req.Method != "Ping" || proto.Unmarshal(req.Payload, &ping) != nil {
					return
				}
				p, err := proto.Marshal(pingResponse())
				if err != nil {
					return
				}
				if s.writeFrame(msgResponse, id, &ttrpc.Response{Payload: p}) != nil {
					return
				}
			}
		}()
	}
}

// syncPing returns a function doing one ttrpc Ping on c, synchronously.
func syncPing(c net.Conn) func() error {
	s := newSyncConn(c)
	return func() error {
		id := s.streamID
		s.streamID += 2
		if err := s.writeFrame(msgRequest, id, &ttrpc.Request{Service: "petty.agent.v1.Agent", Method: "Ping"}); err != nil {
			return err
		}
		typ, rid, body, err := s.readFrame()
		if err != nil {
			return err
		}
		if typ != msgResponse || rid != id {
			return fmt.Errorf("got frame type %d on stream %d, want a response on %d", typ, rid, id)
		}
		var resp ttrpc.Response
		if err := proto.Unmarshal(body, &resp); err != nil {
			return err
		}
		if resp.Status != nil && resp.Status.Code != 0 {
			return fmt.Errorf("ping: status %v", resp.Status)
		}
		var ping agentpb.PingResponse
		if err := proto.Unmarshal(resp.Payload, &ping); err != nil {
			return err
		}
		if ping.Pid == 0 {
			return fmt.Errorf("no pid in ping response")
		}
		return nil
	}
}
