package main

import (
	"fmt"
	"os"
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
	return sw, nil
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
