package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A signed kernel module is the module's ELF followed by the signature
// (sig_len bytes), a 12-byte struct module_signature whose last four bytes
// are sig_len (big-endian), and the marker (include/linux/module_signature.h).
const (
	moduleSigMarker  = "~Module signature appended~\n"
	moduleSigInfoLen = 12
)

// ErrModuleSignature is returned (wrapped) for a module whose appended
// signature trailer is inconsistent.
var ErrModuleSignature = errors.New("image: malformed module signature trailer")

// stripModuleSignature returns the module without its appended signature
// (data unchanged when it has none).
//
// The guest kernel would otherwise hash every module and check its
// signature at each boot: under TCG that is about two thirds of the
// instructions module loading executes (measured with -icount: 65 million
// of the initramfs's module loads, 21 million without). It buys nothing
// here: the modules are the host kernel package's, read by petty when it
// builds the initramfs, which holds the agent itself. A kernel that does
// not enforce signatures (Debian's, without Secure Boot) loads an unsigned
// module and marks itself tainted ('E' in /proc/sys/kernel/tainted); one
// that enforces them refuses it, as it would refuse any petty image.
func stripModuleSignature(p string, data []byte) ([]byte, error) {
	if !bytes.HasSuffix(data, []byte(moduleSigMarker)) {
		return data, nil
	}
	end := len(data) - len(moduleSigMarker)
	if end < moduleSigInfoLen {
		return nil, fmt.Errorf("%w: module %s: %d bytes", ErrModuleSignature, p, len(data))
	}
	sigLen := int64(binary.BigEndian.Uint32(data[end-4 : end]))
	n := int64(end-moduleSigInfoLen) - sigLen
	if n <= 0 || !bytes.HasPrefix(data[:n], []byte("\x7fELF")) {
		return nil, fmt.Errorf("%w: module %s: a %d-byte signature in %d bytes", ErrModuleSignature, p, sigLen, len(data))
	}
	return data[:n], nil
}
