package agent

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
)

// frame builds one raw ttrpc frame.
func frame(streamID uint32, typ byte, payload []byte) []byte {
	b := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	binary.BigEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[4:8], streamID)
	b[8] = typ
	return append(b, payload...)
}

// requestFrame builds a raw ttrpc request frame.
func requestFrame(streamID uint32, service, method string, msg proto.Message) []byte {
	var payload []byte
	if msg != nil {
		payload, _ = proto.Marshal(msg)
	}
	req, _ := proto.Marshal(&ttrpc.Request{Service: service, Method: method, Payload: payload})
	return frame(streamID, 1, req)
}

func TestUnknownMethod(t *testing.T) {
	_, sock := startServer(t)
	conn, err := dialAuth(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	tc := ttrpc.NewClient(conn)
	defer tc.Close()
	ctx := testContext(t)
	for _, tt := range []struct{ service, method string }{
		{"petty.agent.v1.Agent", "NoSuchMethod"},
		{"no.such.Service", "Ping"},
	} {
		var resp agentpb.PingResponse
		err := tc.Call(ctx, tt.service, tt.method, &agentpb.PingRequest{}, &resp)
		if !errors.Is(fromRemote(err), errors.ErrUnsupported) {
			t.Errorf("%s/%s = %v, want Unimplemented", tt.service, tt.method, err)
		}
	}
	// The same connection still works.
	c := agentpb.NewAgentClient(tc)
	if _, err := c.Ping(ctx, &agentpb.PingRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput sends malformed input on raw connections; each either gets
// an error reply or is dropped, and the agent keeps serving.
func TestBadInput(t *testing.T) {
	_, sock := startServer(t)
	big := make([]byte, 10)
	binary.BigEndian.PutUint32(big, MaxFrameSize+1)
	big[7], big[8] = 1, 1
	tests := []struct {
		name   string
		input  []byte
		closed bool // the agent drops the connection
	}{
		{"oversized frame", big, true},
		{"4GiB frame", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0}, true},
		{"unknown message type", frame(1, 9, nil), true},
		{"sync line", []byte("PETTY-SYNC abc\n"), true},
		{"garbage request payload", frame(1, 1, []byte{0xff, 0xff, 0xff}), false},
		{"even stream id", requestFrame(2, "petty.agent.v1.Agent", "Ping", &agentpb.PingRequest{}), false},
		{"bad method payload", frame(1, 1, mustMarshal(&ttrpc.Request{Service: "petty.agent.v1.Agent", Method: "Ping", Payload: []byte{0xff}})), false},
		{"data on unknown stream", frame(1, 3, []byte{1, 2}), false},
		{"exec without start", requestFrame(1, "petty.agent.v1.Agent", "Exec", &agentpb.ExecInput{Msg: &agentpb.ExecInput_Credit{Credit: 5}}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := dialAuth(sock, "")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tt.input); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, err = io.ReadAll(conn)
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			if tt.closed && timedOut {
				t.Errorf("connection not closed")
			}
			if !tt.closed && !timedOut {
				t.Errorf("connection closed (%v), want an error reply only", err)
			}
			if _, err := dial(t, sock).Ping(testContext(t)); err != nil {
				t.Fatalf("agent stopped serving: %v", err)
			}
		})
	}
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestTruncatedFrameThenClose(t *testing.T) {
	_, sock := startServer(t)
	for _, n := range []int{1, 5, 10, 12} {
		conn, err := dialAuth(sock, "")
		if err != nil {
			t.Fatal(err)
		}
		f := requestFrame(1, "petty.agent.v1.Agent", "Ping", &agentpb.PingRequest{})
		conn.Write(f[:min(n, len(f)-1)])
		conn.Close()
	}
	if _, err := dial(t, sock).Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteErrorMapping(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want error
	}{
		{&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}, fs.ErrNotExist},
		{&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission}, fs.ErrPermission},
		{&fs.PathError{Op: "mkdir", Path: "/x", Err: fs.ErrExist}, fs.ErrExist},
	} {
		got := pathError("op", "/x", toStatus(tt.err))
		if !errors.Is(got, tt.want) {
			t.Errorf("round trip of %v = %v, want errors.Is %v", tt.err, got, tt.want)
		}
	}
}
