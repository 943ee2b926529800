package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// Framing: a 10-byte header (length uint32, stream id uint32, type byte,
// flags byte, big-endian) followed by length bytes. It is ttrpc's frame
// format, so the Mux and tools that work on raw frames need nothing else.
const (
	// HeaderLen is the length of a frame header.
	HeaderLen = 10

	// TypeRequest opens a call: its body is a Request.
	TypeRequest = 1
	// TypeResponse ends a call: its body is a Response.
	TypeResponse = 2
	// TypeData carries one message of a stream.
	TypeData = 3

	// FlagRemoteClose on a data frame: the sender sends nothing more on
	// this stream.
	FlagRemoteClose = 0x1
	// FlagRemoteOpen on a request frame: the call is a stream whose
	// messages follow as data frames.
	FlagRemoteOpen = 0x2
	// FlagNoData on a data frame: the frame carries no message (with
	// FlagRemoteClose, a bare end of stream).
	FlagNoData = 0x4

	// MaxFrameSize is the largest frame body either side accepts; a peer
	// announcing a larger frame is dropped before anything is allocated for
	// it.
	MaxFrameSize = 4 << 20
)

// ErrMalformedFrame is returned (wrapped) for a frame header that is not
// valid: too long or of an unknown type. It wraps io.ErrUnexpectedEOF:
// after one, the byte stream cannot be trusted and the connection ends.
var ErrMalformedFrame = fmt.Errorf("agent: malformed frame: %w", io.ErrUnexpectedEOF)

// Header is a decoded frame header.
type Header struct {
	Length   uint32 // body length
	StreamID uint32 // odd: opened by the client (host)
	Type     byte   // TypeRequest, TypeResponse or TypeData
	Flags    byte   // Flag* bits
}

// DecodeHeader decodes the first HeaderLen bytes of b.
func DecodeHeader(b []byte) Header {
	_ = b[HeaderLen-1]
	return Header{
		Length:   binary.BigEndian.Uint32(b[0:4]),
		StreamID: binary.BigEndian.Uint32(b[4:8]),
		Type:     b[8],
		Flags:    b[9],
	}
}

// Put encodes h into the first HeaderLen bytes of b.
func (h Header) Put(b []byte) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:4], h.Length)
	binary.BigEndian.PutUint32(b[4:8], h.StreamID)
	b[8], b[9] = h.Type, h.Flags
}

// Check validates h against limit (at most MaxFrameSize) and the known
// frame types; the error wraps ErrMalformedFrame.
func (h Header) Check(limit uint32) error {
	if h.Length > limit {
		return fmt.Errorf("%w: length %d exceeds %d", ErrMalformedFrame, h.Length, limit)
	}
	if h.Type < TypeRequest || h.Type > TypeData {
		return fmt.Errorf("%w: unknown message type %d", ErrMalformedFrame, h.Type)
	}
	return nil
}

// CheckHeader validates the encoded header at the start of b with the
// MaxFrameSize limit.
func CheckHeader(b []byte) error {
	return DecodeHeader(b).Check(MaxFrameSize)
}

// ErrTooLarge is returned (wrapped) when a message to send does not fit in
// MaxFrameSize.
var ErrTooLarge = errors.New("agent: message over the frame size limit")

// AppendFrame appends a frame on stream id of type typ with flags whose
// body is m marshalled (empty for a nil m). The frame is encoded in place:
// the header is written once the body's length is known.
func AppendFrame(dst []byte, id uint32, typ, flags byte, m proto.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	if m != nil {
		var err error
		if dst, err = (proto.MarshalOptions{}).MarshalAppend(dst, m); err != nil {
			return dst[:start], err
		}
	}
	return finishFrame(dst, start, id, typ, flags)
}

// finishFrame writes the header of the frame starting at dst[start:].
func finishFrame(dst []byte, start int, id uint32, typ, flags byte) ([]byte, error) {
	n := len(dst) - start - HeaderLen
	if n > MaxFrameSize {
		return dst[:start], fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, MaxFrameSize)
	}
	Header{Length: uint32(n), StreamID: id, Type: typ, Flags: flags}.Put(dst[start:])
	return dst, nil
}

// ReadFrame reads one whole frame from r, checking its header against limit
// before allocating its body.
func ReadFrame(r io.Reader, limit uint32) (Header, []byte, error) {
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Header{}, nil, err
	}
	h := DecodeHeader(hb[:])
	if err := h.Check(limit); err != nil {
		return h, nil, err
	}
	body := make([]byte, h.Length)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	return h, body, nil
}
