package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/pettyvm/petty/agent/wire"
)

// ErrHandshake is returned (wrapped) by SerialHandshake when the agent did
// not answer.
var ErrHandshake = errors.New("agent: serial handshake failed")

// SerialHandshake runs the host side of the serial handshake (see package
// wire) on conn: it writes sync lines until the agent answers with the
// matching ready line, discarding every byte before it. Afterwards conn
// carries frames: pass it to NewClient. On failure (including ctx ending)
// it closes conn. It uses conn's deadlines while running and clears them
// before returning.
func SerialHandshake(ctx context.Context, conn net.Conn) (retErr error) {
	defer func() {
		if retErr != nil {
			conn.Close()
		}
	}()
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("%w: nonce: %w", ErrHandshake, err)
	}
	nonce := hex.EncodeToString(raw[:])
	syncLine := []byte(wire.SyncPrefix + nonce + "\n")
	want := []byte(wire.ReadyPrefix + nonce)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		t := time.NewTicker(wire.SyncInterval)
		defer t.Stop()
		for {
			if _, err := conn.Write(syncLine); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	// ctx ending aborts the blocked read and any blocked write.
	unblock := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer func() {
		if !unblock() {
			retErr = fmt.Errorf("%w: %w", ErrHandshake, ctx.Err())
		}
	}()

	err := readUntilLine(conn, want)
	close(stop)
	if err != nil {
		conn.SetDeadline(time.Now()) // unblock the writer
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return nil
}

// readUntilLine reads r one byte at a time (so nothing after the line is
// consumed) until a line ending in want, then returns. It keeps at most
// 2*wire.MaxSyncLine bytes of a line.
func readUntilLine(r io.Reader, want []byte) error {
	var line []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return err
		}
		if b[0] != '\n' {
			if len(line) < 2*wire.MaxSyncLine {
				line = append(line, b[0])
			}
			continue
		}
		if bytes.HasSuffix(line, want) {
			return nil
		}
		line = line[:0]
	}
}
