package main

import (
	"errors"
	"io"
	"net"
)

// echoServer is a trivial in-process unix-socket server that writes back
// whatever it reads: the floor for one request/response round trip.
type echoServer struct {
	ln   net.Listener
	sock string
}

func startEcho(sock string) (*echoServer, error) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return &echoServer{ln: ln, sock: sock}, nil
}

func (e *echoServer) Close() error { return e.ln.Close() }

// measure times n round trips of a size-byte message on one connection.
func (e *echoServer) measure(size, n int) (samples, error) {
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msg, buf := make([]byte, size), make([]byte, size)
	rt := func() error {
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
	return timeN(rt, n)
}
