package agent

import "github.com/pettyvm/petty/agent/wire"

// MaxFrameSize is the largest frame body the Client reads; a larger one
// fails the connection before anything is allocated for it.
const MaxFrameSize = wire.MaxFrameSize
