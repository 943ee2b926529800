package guest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// shutdownGrace bounds how long Run waits for calls in flight (such as the
// Shutdown reply itself) once it stops.
const shutdownGrace = 2 * time.Second

// Run is petty-agent's main loop: it serves the agent protocol on listen (a
// --listen URI) until ctx ends or a client calls Shutdown. A serial port
// that does not exist yet is waited for (see openSerialPort).
// Every connection must authenticate first (see agent.Authenticate) with the
// token opts give, or inside a guest the kernel command line's petty.token=.
//
// Run and BootInitramfs are the only places that decide whether the agent
// is a guest's init: only when os.Getpid() == 1 does Run mount /proc, /sys, /dev, /dev/pts, /tmp
// and /run (those not mounted yet), reap orphaned processes and, on
// Shutdown, sync and power off or restart the machine; it then does not
// return unless reboot(2) fails. Anywhere else Shutdown makes Run return nil
// and nothing is mounted or rebooted.
func Run(ctx context.Context, listen string, log *slog.Logger, opts ...RunOption) error {
	if log == nil {
		log = slog.Default()
	}
	u, err := ParseListenURI(listen)
	if err != nil {
		return err
	}
	srv := &Server{Logger: log}
	if os.Getpid() == 1 {
		srv.guest = becomeGuestInit(log)
	}
	srv.applyRunOptions(opts, log)

	serveErr := make(chan error, 1)
	switch u.Scheme {
	case "serial":
		port, err := openSerialPort(ctx, u.Path, srv.guest != nil)
		if err != nil {
			return srv.finish(fmt.Errorf("agent: open serial port: %w", err))
		}
		go func() { serveErr <- srv.ServeSerial(virtioPort{port}) }()
	default:
		l, err := listenStream(u)
		if err != nil {
			return srv.finish(fmt.Errorf("agent: listen on %s: %w", u, err))
		}
		go func() { serveErr <- srv.Serve(l) }()
	}
	log.Info("petty-agent serving", "listen", u.String(), "version", Version, "pid", os.Getpid(), "init", srv.guest != nil)
	if srv.guest != nil {
		// Off the path to agent-ready: the host's first call comes first.
		go func() {
			select {
			case <-srv.firstAnswered():
				freeInitramfs(log)
			case <-srv.closedCh():
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
		if srv.guest != nil {
			// SIGTERM/SIGINT to the guest's init: Ctrl-Alt-Del. Restart
			// (after syncing): the VMMs petty drives exit when the guest
			// restarts (Firecracker with reboot=k, QEMU with -no-reboot),
			// while power-off needs ACPI, which Firecracker lacks.
			srv.mu.Lock()
			srv.reboot = true
			srv.mu.Unlock()
		}
	case <-srv.ShutdownRequested():
	case runErr = <-serveErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if runErr == nil {
		if err := <-serveErr; !errors.Is(err, ErrServerClosed) {
			runErr = err
		}
	}
	return srv.finish(runErr)
}

// finish is Run's last step: as a guest's init it powers the machine off
// (PID 1 must never just exit: the kernel would panic); otherwise it returns
// err.
func (s *Server) finish(err error) error {
	if s.guest == nil {
		return err
	}
	if err != nil {
		s.logger().Error("agent failed, powering off", "err", err)
	}
	s.mu.Lock()
	reboot := s.reboot
	s.mu.Unlock()
	if perr := s.guest.powerOff(reboot); perr != nil {
		s.logger().Warn("not powering off", "err", perr)
	}
	return err
}
