package agent

import "github.com/pettyvm/petty/agent/wire"

// MaxFrameSize is the largest frame body the Client reads; a larger one
// fails the connection before anything is allocated for it.
const MaxFrameSize = wire.MaxFrameSize

// The frame format's constants under the names this package used before
// package wire existed, for code here that works on raw frames (a proxy
// remapping stream ids, for one).
const (
	frameHeaderLen  = wire.HeaderLen
	msgRequest      = wire.TypeRequest
	msgResponse     = wire.TypeResponse
	msgData         = wire.TypeData
	flagRemoteClose = wire.FlagRemoteClose
	flagRemoteOpen  = wire.FlagRemoteOpen
	flagNoData      = wire.FlagNoData
)
