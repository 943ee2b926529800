package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The bodies of request and response frames. Their protobuf encoding is
// ttrpc's (ttrpc.Request, ttrpc.Response with a google.rpc.Status), written
// and read here with protowire: three small messages do not need generated
// code, and a ttrpc peer still understands petty's frames.
//
//	Request  { string service = 1; string method = 2; bytes payload = 3; int64 timeout_nano = 4; }
//	Response { Status status = 1; bytes payload = 2; }
//	Status   { int32 code = 1; string message = 2; }

// ErrMalformedMessage is returned (wrapped) for a request or response body
// that does not decode.
var ErrMalformedMessage = errors.New("agent: malformed message")

// Request is the body of a request frame.
type Request struct {
	Service     string // ServiceName
	Method      string // a Method* name
	Payload     []byte // the marshalled request message (unary calls)
	TimeoutNano int64  // the caller's remaining time, 0 for none
}

// Status is the outcome of a call.
type Status struct {
	Code    Code
	Message string
}

// Response is the body of a response frame.
type Response struct {
	Status  Status
	Payload []byte // the marshalled response message when Status.Code is OK
}

// AppendRequestFrame appends a request frame on stream id whose payload is
// in marshalled (nothing for a nil in).
func AppendRequestFrame(dst []byte, id uint32, flags byte, service, method string, in proto.Message, timeoutNano int64) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	dst = appendString(dst, 1, service)
	dst = appendString(dst, 2, method)
	if in != nil {
		n := proto.Size(in)
		if n > 0 {
			dst = protowire.AppendTag(dst, 3, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(n))
			var err error
			if dst, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(dst, in); err != nil {
				return dst[:start], err
			}
		}
	}
	if timeoutNano != 0 {
		dst = protowire.AppendTag(dst, 4, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(timeoutNano))
	}
	return finishFrame(dst, start, id, TypeRequest, flags)
}

// AppendResponseFrame appends a response frame on stream id with status st
// and, when st is OK and out is not nil, out marshalled as its payload. A
// response that would exceed MaxFrameSize becomes a ResourceExhausted
// status instead.
func AppendResponseFrame(dst []byte, id uint32, st Status, out proto.Message) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	if st.Code != OK {
		dst = appendStatus(dst, st)
	} else if out != nil {
		n := proto.Size(out)
		if n > MaxFrameSize {
			return AppendResponseFrame(dst[:start], id, Status{Code: ResourceExhausted, Message: fmt.Sprintf("response of %d bytes over the %d byte frame limit", n, MaxFrameSize)}, nil)
		}
		if n > 0 {
			dst = protowire.AppendTag(dst, 2, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(n))
			var err error
			if dst, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(dst, out); err != nil {
				return AppendResponseFrame(dst[:start], id, Status{Code: Internal, Message: err.Error()}, nil)
			}
		}
	}
	dst, err := finishFrame(dst, start, id, TypeResponse, 0)
	if err != nil {
		return AppendResponseFrame(dst[:start], id, Status{Code: ResourceExhausted, Message: err.Error()}, nil)
	}
	return dst
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendStatus(b []byte, st Status) []byte {
	var inner []byte
	if st.Code != 0 {
		inner = protowire.AppendTag(inner, 1, protowire.VarintType)
		inner = protowire.AppendVarint(inner, uint64(int64(int32(st.Code))))
	}
	inner = appendString(inner, 2, st.Message)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

// Unmarshal decodes a request body. Unknown fields are skipped.
func (r *Request) Unmarshal(b []byte) error {
	*r = Request{}
	return walk(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			r.Service = string(v)
		case num == 2 && typ == protowire.BytesType:
			r.Method = string(v)
		case num == 3 && typ == protowire.BytesType:
			r.Payload = v
		case num == 4 && typ == protowire.VarintType:
			r.TimeoutNano = int64(x)
		}
		return nil
	})
}

// Unmarshal decodes a response body. Unknown fields are skipped.
func (r *Response) Unmarshal(b []byte) error {
	*r = Response{}
	return walk(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			return walk(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					r.Status.Code = Code(uint32(int32(x)))
				case num == 2 && typ == protowire.BytesType:
					r.Status.Message = string(v)
				}
				return nil
			})
		case num == 2 && typ == protowire.BytesType:
			r.Payload = v
		}
		return nil
	})
}

// walk calls f for each field of the protobuf message b: v holds a bytes
// field's value, x a varint's.
func walk(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrMalformedMessage, protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrMalformedMessage, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
