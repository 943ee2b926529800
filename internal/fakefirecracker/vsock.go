package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// firstHostPort is where the ephemeral host-side ports of host-initiated
// connections start, as in Firecracker's vsock muxer.
const firstHostPort = 1 << 30

// maxConnectLine bounds the "CONNECT <port>\n" line.
const maxConnectLine = 32

// vsockDevice is the hybrid vsock device: a unix listener at uds_path whose
// connections are forwarded to the fake guest.
type vsockDevice struct {
	v        *vmm
	cfg      vsockConfig
	ln       *net.UnixListener
	guestDir string
	nextPort atomic.Uint32
	closed   atomic.Bool
}

// newVsockDevice binds uds_path now, as Firecracker does when the device is
// configured; an existing path is an error.
func newVsockDevice(v *vmm, cfg vsockConfig) (*vsockDevice, error) {
	path := *cfg.UDSPath
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, faultf("Cannot create backend for vsock device: Error binding to the host-side Unix socket %s: %v", path, errnoText(err))
	}
	ln.SetUnlinkOnClose(false)
	d := &vsockDevice{v: v, cfg: cfg, ln: ln, guestDir: filepath.Join(filepath.Dir(path), "fake-guest")}
	d.nextPort.Store(firstHostPort)
	go d.acceptLoop()
	return d, nil
}

// errnoText reduces a *net.OpError to its system error ("address already in use").
func errnoText(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

func (d *vsockDevice) close() {
	if d.closed.CompareAndSwap(false, true) {
		_ = d.ln.Close()
	}
}

func (d *vsockDevice) acceptLoop() {
	for {
		c, err := d.ln.AcceptUnix()
		if err != nil {
			if d.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go d.serve(c)
	}
}

// hostPort allocates the next ephemeral host port, never equal to guestPort.
func (d *vsockDevice) hostPort(guestPort uint32) uint32 {
	for {
		p := d.nextPort.Add(1) - 1
		if p != guestPort && p >= firstHostPort {
			return p
		}
		if p < firstHostPort { // wrapped around
			d.nextPort.CompareAndSwap(p+1, firstHostPort)
		}
	}
}

// serve handles one host-initiated connection: CONNECT, OK, then bridge.
func (d *vsockDevice) serve(host *net.UnixConn) {
	if !d.v.gate.isOpen() {
		d.v.debug("vsock: a host connection waits for the guest to run")
	}
	d.v.gate.wait() // the guest must be running to answer
	br := bufio.NewReaderSize(host, 4096)
	port, ok := readConnect(br)
	if !ok {
		_ = host.Close()
		return
	}
	if d.v.sw.vsockSilent {
		d.blackhole(host, br, port)
		return
	}
	guestDir := d.v.sw.guestDir
	if guestDir == "" {
		guestDir = d.guestDir
	}
	guest, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: filepath.Join(guestDir, strconv.FormatUint(uint64(port), 10)), Net: "unix"})
	if err != nil {
		// The guest refused (nobody listens): Firecracker closes the
		// host connection without answering.
		_ = host.Close()
		return
	}
	reply := "OK " + strconv.FormatUint(uint64(d.hostPort(port)), 10) + "\n" + d.v.sw.greeting
	if _, err := io.WriteString(host, reply); err != nil {
		_ = host.Close()
		_ = guest.Close()
		return
	}
	bridge(host, br, guest)
}

// blackhole is FAKEFC_VSOCK_SILENT: a guest that accepts the connection and
// never answers (a hung agent). The fake says OK, then swallows what the host
// sends until the host closes or the fake exits.
func (d *vsockDevice) blackhole(host *net.UnixConn, br *bufio.Reader, port uint32) {
	defer host.Close()
	if _, err := io.WriteString(host, "OK "+strconv.FormatUint(uint64(d.hostPort(port)), 10)+"\n"); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, br)
}

// readConnect reads "CONNECT <port>\n"; anything else is malformed.
func readConnect(br *bufio.Reader) (uint32, bool) {
	var line []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, false
		}
		if b == '\n' {
			break
		}
		line = append(line, b)
		if len(line) > maxConnectLine {
			return 0, false
		}
	}
	rest, ok := strings.CutPrefix(string(line), "CONNECT ")
	if !ok {
		return 0, false
	}
	port, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(port), true
}

// bridge copies bytes both ways. EOF from one side half-closes the other;
// a failed write closes both.
func bridge(host *net.UnixConn, hostR io.Reader, guest *net.UnixConn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = host.Close()
			_ = guest.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pump := func(dst *net.UnixConn, src io.Reader) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			closeBoth()
			return
		}
		_ = dst.CloseWrite()
	}
	go pump(guest, hostR)
	go pump(host, guest)
	wg.Wait()
	closeBoth()
}
