package main

import (
	"errors"
	"io"
	"net"
)

// serveEcho is the raw baseline: it writes back whatever it reads, one
// goroutine per connection, with no framing at all.
func serveEcho(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// startInProcessEcho serves the echo on a goroutine of this process: an
// informational row only, as it skips the cross-process wake-up.
func startInProcessEcho(sock string) (net.Listener, error) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	go func() { _ = serveEcho(ln) }()
	return ln, nil
}

// echoCall returns a function doing one size-byte round trip on c.
func echoCall(c net.Conn, size int) func() error {
	msg, buf := make([]byte, size), make([]byte, size)
	for i := range msg {
		msg[i] = byte(i)
	}
	return func() error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != string(msg) {
			return errors.New("echo mismatch")
		}
		return nil
	}
}
