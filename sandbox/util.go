package sandbox

import (
	"io"
	"os"
	"strings"
)

func stringsCut(kv string) (string, string, bool) { return strings.Cut(kv, "=") }

func compareStrings(a, b string) int { return strings.Compare(a, b) }

// lastBytes returns the last n bytes of b.
func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// copyFile copies src to a new private file dst (copy_file_range, so
// reflinks where the file system has them).
func copyFile(dst, src string) (retErr error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err := out.Close(); err != nil && retErr == nil {
			retErr = err
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
