package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pettyvm/petty/agent/agentpb"
)

func TestHeader(t *testing.T) {
	h := Header{Length: 0x01020304, StreamID: 0x0a0b0c0d, Type: TypeData, Flags: FlagRemoteClose | FlagNoData}
	var b [HeaderLen]byte
	h.Put(b[:])
	want := []byte{1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 3, 5}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("Put = %x, want %x", b, want)
	}
	if got := DecodeHeader(b[:]); got != h {
		t.Fatalf("DecodeHeader = %+v, want %+v", got, h)
	}
	for _, tt := range []struct {
		h   Header
		bad bool
	}{
		{Header{Length: MaxFrameSize, Type: TypeRequest}, false},
		{Header{Length: MaxFrameSize + 1, Type: TypeRequest}, true},
		{Header{Type: 0}, true},
		{Header{Type: 4}, true},
	} {
		if err := tt.h.Check(MaxFrameSize); (err != nil) != tt.bad || (err != nil && !errors.Is(err, ErrMalformedFrame)) {
			t.Errorf("Check(%+v) = %v", tt.h, err)
		}
	}
}

func TestEnvelopes(t *testing.T) {
	b, err := AppendRequestFrame(nil, 5, FlagRemoteOpen, ServiceName, MethodStat, &agentpb.StatRequest{Path: "/etc"}, 42)
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := ReadFrame(bytes.NewReader(b), MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	if h != (Header{Length: uint32(len(b) - HeaderLen), StreamID: 5, Type: TypeRequest, Flags: FlagRemoteOpen}) {
		t.Errorf("header %+v", h)
	}
	var req Request
	if err := req.Unmarshal(body); err != nil {
		t.Fatal(err)
	}
	if req.Service != ServiceName || req.Method != MethodStat || req.TimeoutNano != 42 {
		t.Errorf("request %+v", req)
	}

	for _, tt := range []struct {
		name string
		st   Status
		out  *agentpb.PingResponse
	}{
		{"ok", Status{}, &agentpb.PingResponse{Version: "v", Pid: 1}},
		{"error", Status{Code: NotFound, Message: "no"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := AppendResponseFrame(nil, 7, tt.st, tt.out)
			h, body, err := ReadFrame(bytes.NewReader(f), MaxFrameSize)
			if err != nil || h.StreamID != 7 || h.Type != TypeResponse {
				t.Fatalf("ReadFrame = %+v, %v", h, err)
			}
			var resp Response
			if err := resp.Unmarshal(body); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.st, resp.Status); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}

	// A response over the frame limit becomes ResourceExhausted.
	huge := &agentpb.ListDirResponse{}
	for range 3 {
		huge.Entries = append(huge.Entries, &agentpb.FileInfo{Name: strings.Repeat("x", 2<<20)})
	}
	_, body, err = ReadFrame(bytes.NewReader(AppendResponseFrame(nil, 9, Status{}, huge)), MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	var resp Response
	if err := resp.Unmarshal(body); err != nil || resp.Status.Code != ResourceExhausted {
		t.Errorf("oversized response: %+v, %v", resp.Status, err)
	}

	if err := req.Unmarshal([]byte{0x0a, 0x05, 'a'}); !errors.Is(err, ErrMalformedMessage) {
		t.Errorf("truncated request: %v", err)
	}
}

func TestReadFrameLimit(t *testing.T) {
	var hb [HeaderLen]byte
	Header{Length: 1 << 30, Type: TypeData}.Put(hb[:])
	if _, _, err := ReadFrame(bytes.NewReader(hb[:]), MaxFrameSize); !errors.Is(err, ErrMalformedFrame) {
		t.Errorf("ReadFrame of a 1 GiB frame: %v", err)
	}
	Header{Length: 10, Type: TypeData}.Put(hb[:])
	if _, _, err := ReadFrame(bytes.NewReader(append(hb[:], 1, 2)), MaxFrameSize); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadFrame of a truncated body: %v", err)
	}
}

func TestCodeString(t *testing.T) {
	if NotFound.String() != "NotFound" || Code(99).String() != "Code(99)" {
		t.Errorf("String: %v %v", NotFound, Code(99))
	}
}
