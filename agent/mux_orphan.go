package agent

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// How a Mux ends the streams of a downstream that went away (see Mux). This
// is the only place where the Mux knows more of the protocol than frames.

// orphanLocked starts ending stream upID, whose downstream went away.
func (m *Mux) orphanLocked(upID uint32, r *muxRoute) {
	if !r.stream || r.sentClose {
		return // a unary call ends by itself; a closed stream is ending
	}
	if r.exec && !r.exited {
		m.sendControlLocked(execInputFrame(upID, &agentpb.ExecInput{Msg: &agentpb.ExecInput_Kill{Kill: true}}))
		return
	}
	m.sendControlLocked(closeSendFrame(upID))
	r.sentClose = true
}

// orphanFrameLocked handles frame f from the agent on orphaned stream upID:
// an Exec stream's output is credited, as a draining client would, and its
// exit status answered with the client's close.
func (m *Mux) orphanFrameLocked(upID uint32, r *muxRoute, f []byte) {
	if f[8] != wire.TypeData || !r.exec || r.sentClose {
		return
	}
	if r.exited {
		m.sendControlLocked(closeSendFrame(upID))
		r.sentClose = true
		return
	}
	if tag := execOutputTag(f[wire.HeaderLen:]); tag == execStdoutTag || tag == execStderrTag {
		m.sendControlLocked(execInputFrame(upID, &agentpb.ExecInput{Msg: &agentpb.ExecInput_Credit{Credit: 1}}))
	}
}

// Tags of ExecOutput's oneof members: the message holds exactly one, so its
// encoding starts with that member's tag.
var (
	execStdoutTag = protowire.EncodeTag(2, protowire.BytesType)
	execStderrTag = protowire.EncodeTag(3, protowire.BytesType)
	execExitTag   = protowire.EncodeTag(5, protowire.BytesType)
)

// execOutputTag returns the tag an encoded ExecOutput starts with, or 0.
func execOutputTag(payload []byte) uint64 {
	tag, n := protowire.ConsumeVarint(payload)
	if n < 0 {
		return 0
	}
	return tag
}

// isExecExit reports whether an encoded ExecOutput is the exit status.
func isExecExit(payload []byte) bool {
	return execOutputTag(payload) == execExitTag
}

// requestMethod returns the method a request frame's payload calls, or "".
func requestMethod(payload []byte) string {
	var req wire.Request
	if req.Unmarshal(payload) != nil {
		return ""
	}
	return req.Method
}

// execInputFrame is a data frame carrying in on stream id.
func execInputFrame(id uint32, in *agentpb.ExecInput) []byte {
	b, _ := proto.Marshal(in) // cannot fail for these messages
	return dataFrame(id, 0, b)
}

// closeSendFrame is the client's close of stream id (Client's CloseSend).
func closeSendFrame(id uint32) []byte {
	return dataFrame(id, wire.FlagRemoteClose|wire.FlagNoData, nil)
}

func dataFrame(id uint32, flags byte, payload []byte) []byte {
	f := make([]byte, wire.HeaderLen+len(payload))
	wire.Header{Length: uint32(len(payload)), StreamID: id, Type: wire.TypeData, Flags: flags}.Put(f)
	copy(f[wire.HeaderLen:], payload)
	return f
}
