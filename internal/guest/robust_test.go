package guest

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"os/exec"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// frame builds one raw frame.
func frame(streamID uint32, typ byte, payload []byte) []byte {
	b := make([]byte, wire.HeaderLen, wire.HeaderLen+len(payload))
	wire.Header{Length: uint32(len(payload)), StreamID: streamID, Type: typ}.Put(b)
	return append(b, payload...)
}

// requestFrame builds a raw request frame.
func requestFrame(streamID uint32, service, method string, msg proto.Message) []byte {
	b, err := wire.AppendRequestFrame(nil, streamID, 0, service, method, msg, 0)
	if err != nil {
		panic(err)
	}
	return b
}

// requestBody builds the body of a request frame with a raw payload.
func requestBody(service, method string, payload []byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, service)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, method)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendBytes(b, payload)
}

func TestUnknownMethod(t *testing.T) {
	_, sock := startServer(t)
	conn, err := dialAuth(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	for i, tt := range []struct{ service, method string }{
		{wire.ServiceName, "NoSuchMethod"},
		{"no.such.Service", "Ping"},
		{wire.ServiceName, "Ping"}, // the same connection still works
	} {
		id := uint32(2*i + 1)
		if _, err := conn.Write(requestFrame(id, tt.service, tt.method, &agentpb.PingRequest{})); err != nil {
			t.Fatal(err)
		}
		gotID, resp := readResponse(t, conn)
		want := wire.Unimplemented
		if tt.method == "Ping" && tt.service == wire.ServiceName {
			want = wire.OK
		}
		if gotID != id || resp.Status.Code != want {
			t.Errorf("%s/%s: response on stream %d with %v, want %d with %v", tt.service, tt.method, gotID, resp.Status, id, want)
		}
	}
}

// TestBadInput sends malformed input on raw connections; each either gets
// an error reply or is dropped, and the agent keeps serving.
func TestBadInput(t *testing.T) {
	_, sock := startServer(t)
	big := make([]byte, 10)
	binary.BigEndian.PutUint32(big, wire.MaxFrameSize+1)
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
		{"bad method payload", frame(1, 1, requestBody(wire.ServiceName, "Ping", []byte{0xff})), false},
		{"response frame from the host", frame(1, 2, nil), true},
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

func TestToStatus(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want wire.Status
	}{
		{&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}, wire.Status{Code: wire.NotFound, Message: "file does not exist"}},
		{&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission}, wire.Status{Code: wire.PermissionDenied, Message: "permission denied"}},
		{&fs.PathError{Op: "mkdir", Path: "/x", Err: fs.ErrExist}, wire.Status{Code: wire.AlreadyExists, Message: "file already exists"}},
		{&exec.Error{Name: "x", Err: exec.ErrNotFound}, wire.Status{Code: wire.NotFound, Message: `exec: "x": executable file not found in $PATH`}},
		{errorf(wire.Aborted, "gone"), wire.Status{Code: wire.Aborted, Message: "gone"}},
		{context.Canceled, wire.Status{Code: wire.Canceled, Message: "context canceled"}},
		{nil, wire.Status{}},
	} {
		if got := toStatus(tt.err); got != tt.want {
			t.Errorf("toStatus(%v) = %+v, want %+v", tt.err, got, tt.want)
		}
	}
}
