package qemu

import "errors"

// ErrClosed is returned (wrapped) by calls on a closed QMP client, and by
// calls after the connection to QEMU broke.
var ErrClosed = errors.New("qemu: qmp connection closed")

// QMPError is an error QEMU returned for a QMP command.
type QMPError struct {
	// Class is QEMU's error class, e.g. "GenericError" or "CommandNotFound".
	Class string `json:"class"`
	// Desc is QEMU's human-readable description.
	Desc string `json:"desc"`
}

// Error implements error.
func (e *QMPError) Error() string { return "qemu: qmp: " + e.Class + ": " + e.Desc }
