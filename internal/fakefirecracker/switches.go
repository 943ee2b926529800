package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// switches are the FAKEFC_* environment variables (see the package doc).
type switches struct {
	socketDelay      time.Duration
	startDelay       time.Duration
	noSocket         bool
	crashAtStart     bool
	ignoreCtrlAltDel bool
	ignoreSigterm    bool
	vsockSilent      bool
	readyFD          int // 0: none
	fail             string
	greeting         string
	guestCmd         string
	guestDir         string
}

func readSwitches() (*switches, error) {
	sw := &switches{
		noSocket:         os.Getenv("FAKEFC_NO_SOCKET") == "1",
		crashAtStart:     os.Getenv("FAKEFC_CRASH_AT_START") == "1",
		ignoreCtrlAltDel: os.Getenv("FAKEFC_IGNORE_CTRLALTDEL") == "1",
		ignoreSigterm:    os.Getenv("FAKEFC_IGNORE_SIGTERM") == "1",
		vsockSilent:      os.Getenv("FAKEFC_VSOCK_SILENT") == "1",
		fail:             os.Getenv("FAKEFC_FAIL"),
		greeting:         os.Getenv("FAKEFC_VSOCK_GREETING"),
		guestCmd:         os.Getenv("FAKEFC_GUEST_CMD"),
		guestDir:         os.Getenv("FAKEFC_GUEST_DIR"),
	}
	var err error
	if sw.socketDelay, err = envDuration("FAKEFC_SOCKET_DELAY"); err != nil {
		return nil, err
	}
	if sw.startDelay, err = envDuration("FAKEFC_START_DELAY"); err != nil {
		return nil, err
	}
	if s := os.Getenv("FAKEFC_READY_FD"); s != "" {
		fd, err := strconv.Atoi(s)
		if err != nil || fd < 3 {
			return nil, fmt.Errorf("fake firecracker: bad FAKEFC_READY_FD %q: want a descriptor number from 3 on", s)
		}
		sw.readyFD = fd
		// Inherited descriptors lack close-on-exec: the guest, started
		// before the fake is ready when it boots from --config-file, must
		// not hold the pipe open.
		syscall.CloseOnExec(fd)
	}
	return sw, nil
}

// signalReady writes "ready\n" to the FAKEFC_READY_FD descriptor, if any,
// and closes it: the startup is over (the API socket accepts connections,
// unless FAKEFC_NO_SOCKET or --no-api say there is none). A test waits for
// the line, or for EOF when the fake exits first, instead of polling.
func (sw *switches) signalReady() {
	if sw.readyFD == 0 {
		return
	}
	f := os.NewFile(uintptr(sw.readyFD), "ready")
	_, _ = f.WriteString("ready\n")
	_ = f.Close()
}

func envDuration(name string) (time.Duration, error) {
	s := os.Getenv(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("fake firecracker: bad %s: %w", name, err)
	}
	return d, nil
}
