package image

import (
	"errors"
	"fmt"
)

// MissingError reports a host file or tool that Build needs and that a
// Debian package provides. Match it with errors.As.
type MissingError struct {
	// What names the missing thing, for example "kernel /boot/vmlinuz-*-cloud-amd64".
	What string
	// Package is the Debian package that provides it.
	Package string
	// Err is the underlying cause, if any.
	Err error
}

// Error says what is missing and the apt command that installs it.
func (e *MissingError) Error() string {
	msg := fmt.Sprintf("image: %s not found: install it with `apt-get install %s`", e.What, e.Package)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *MissingError) Unwrap() error { return e.Err }

// ErrNotVmlinux is returned (wrapped) by ExtractVmlinux when the input is not
// a bzImage or its payload does not decompress to an ELF file.
var ErrNotVmlinux = errors.New("image: not a bzImage with an ELF payload")

// ErrUnsupportedCompression is returned (wrapped) by ExtractVmlinux for a
// payload compressed with a method this package does not decode.
var ErrUnsupportedCompression = errors.New("image: unsupported kernel payload compression")
