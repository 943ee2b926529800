package agent

import (
	"context"
	"encoding/binary"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Synchronous unary calls.
//
// ttrpc's server starts a goroutine per call and hands each reply to a
// sender goroutine; with busy cores every hand-off costs tens of µs. The
// frame guard sees every frame a stream connection reads, so it answers
// the cheap unary methods (Ping, Stat, ListDir, Shutdown) itself, on the
// goroutine that read the request, and writes the response between ttrpc's
// frames (guardConn.wmu). The wire protocol is ttrpc's, unchanged; the
// streaming methods, requests split across reads and anything it does not
// recognise go on to ttrpc as before.

// serviceName is the agent's ttrpc service.
const serviceName = "petty.agent.v1.Agent"

// answerRequest answers a unary request frame's body synchronously, passing
// the whole response frame to reply, and reports whether it did; false
// leaves the request to ttrpc.
func (s *Server) answerRequest(id uint32, flags byte, body []byte, reply func([]byte)) bool {
	if flags != 0 {
		return false
	}
	var req ttrpc.Request
	if proto.Unmarshal(body, &req) != nil || req.Service != serviceName {
		return false
	}
	s.fastActive.Add(1)
	defer s.fastActive.Add(-1)
	resp := s.dispatchUnary(id, &req)
	if resp == nil {
		return false
	}
	reply(resp)
	return true
}

// dispatchUnary runs a cheap unary method and returns its response frame,
// or nil for methods (and payloads) left to ttrpc.
func (s *Server) dispatchUnary(id uint32, req *ttrpc.Request) []byte {
	ctx := context.Background()
	svc := s.svc
	switch req.Method {
	case "Ping":
		return unary(ctx, id, req.Payload, svc.Ping)
	case "Stat":
		return unary(ctx, id, req.Payload, svc.Stat)
	case "ListDir":
		return unary(ctx, id, req.Payload, svc.ListDir)
	case "Shutdown":
		return unary(ctx, id, req.Payload, svc.Shutdown)
	}
	return nil
}

// unary decodes a request payload, calls h and encodes its result as ttrpc
// does. A payload that does not decode is left to ttrpc (nil).
func unary[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](ctx context.Context, id uint32, payload []byte, h func(context.Context, PReq) (Resp, error)) []byte {
	in := PReq(new(Req))
	if proto.Unmarshal(payload, in) != nil {
		return nil
	}
	out, err := h(ctx, in)
	var p []byte
	if err == nil {
		p, err = proto.Marshal(out)
	}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			st = status.New(codes.Unknown, err.Error())
		}
		return statusFrame(id, st)
	}
	return responseFrame(id, &ttrpc.Response{Status: status.New(codes.OK, "").Proto(), Payload: p})
}

// statusFrame is a response frame carrying only st.
func statusFrame(id uint32, st *status.Status) []byte {
	return responseFrame(id, &ttrpc.Response{Status: st.Proto()})
}

// responseFrame encodes resp as a ttrpc response frame on stream id. A
// response over the frame limit becomes a ResourceExhausted status.
func responseFrame(id uint32, resp *ttrpc.Response) []byte {
	f, err := proto.MarshalOptions{}.MarshalAppend(make([]byte, frameHeaderLen, 64), resp)
	if err != nil || len(f)-frameHeaderLen > MaxFrameSize {
		f, _ = proto.MarshalOptions{}.MarshalAppend(make([]byte, frameHeaderLen, 64), &ttrpc.Response{
			Status: status.New(codes.ResourceExhausted, "response over the message limit").Proto(),
		})
	}
	binary.BigEndian.PutUint32(f[:4], uint32(len(f)-frameHeaderLen))
	binary.BigEndian.PutUint32(f[4:8], id)
	f[8], f[9] = msgResponse, 0
	return f
}
