package wire

import "time"

// Serial transport handshake.
//
// A virtio-serial port is one byte stream with no connect or disconnect
// events, and the guest drops whatever the host sent before the port was
// opened. So every host session starts with a handshake:
//
//	host:  PETTY-SYNC <nonce>\n    (repeated every SyncInterval until answered)
//	agent: PETTY-READY <nonce>\n   (once per nonce)
//
// after which both sides speak frames. Frames start with a zero byte
// (lengths are below 16 MiB), so a 'P' at a frame boundary is unambiguous.
const (
	// SyncPrefix starts the host's sync line.
	SyncPrefix = "PETTY-SYNC "
	// ReadyPrefix starts the agent's answer.
	ReadyPrefix = "PETTY-READY "
	// SyncInterval is how often the host repeats its sync line.
	SyncInterval = 100 * time.Millisecond
	// MaxNonceLen bounds a nonce.
	MaxNonceLen = 64
	// MaxSyncLine is the longest valid sync line, newline included.
	MaxSyncLine = len(SyncPrefix) + MaxNonceLen + 1
)
