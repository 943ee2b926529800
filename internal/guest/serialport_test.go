package guest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenSerialPort(t *testing.T) {
	dir := t.TempDir()
	t.Run("appears", func(t *testing.T) {
		path := filepath.Join(dir, "port")
		type result struct {
			f   *os.File
			err error
		}
		got := make(chan result, 1)
		go func() {
			f, err := openSerialPort(testContext(t), path, false)
			got <- result{f, err}
		}()
		// Whether it looks before or after the port appears, it opens it.
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatalf("openSerialPort: %v", r.err)
		}
		r.f.Close()
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := openSerialPort(ctx, filepath.Join(dir, "never"), false)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("openSerialPort = %v, want Canceled and ErrNotExist", err)
		}
	})
	t.Run("not a missing file", func(t *testing.T) {
		_, err := openSerialPort(testContext(t), filepath.Join(dir, "port", "x"), false)
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("openSerialPort = %v, want an immediate error", err)
		}
	})
}
