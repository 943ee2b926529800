// Command petty-agent is petty's guest agent. It runs inside the microVM
// (usually as PID 1) and serves the protocol of package
// github.com/pettyvm/petty/agent/wire (the host's client is package agent)
// on AF_VSOCK, a unix socket, or a virtio-serial port. The agent itself is
// package internal/guest.
//
// Usage:
//
//	petty-agent [--listen vsock://:1024 | unix:///path | serial:///dev/virtio-ports/NAME] [--token-file PATH] [--debug]
//
// Started by the kernel as an initramfs's /init (PID 1, argv[0] "/init"),
// it takes no flags: it sets the guest up itself (see guest.BootInitramfs)
// and serves on the kernel command line's petty.listen=. As PID 1 otherwise
// (a root file system's /sbin/init) without --listen, it serves there too.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pettyvm/petty/internal/guest"
)

func main() {
	if guest.IsInitramfsInit() {
		initramfsMain()
		return
	}
	listen := flag.String("listen", guest.DefaultListen, "where to serve: vsock://:PORT, unix:///path or serial:///dev/virtio-ports/NAME")
	tokenFile := flag.String("token-file", "", "require the token in this file on every connection (default: the kernel command line's petty.token= as a guest's init, else any)")
	debug := flag.Bool("debug", false, "log debug messages")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(guest.Version)
		return
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if !flagSet("listen") && os.Getpid() == 1 {
		// The guest's init from a root file system (e.g. /sbin/init): the
		// VMM says where to serve on the kernel command line.
		if l, err := guest.GuestListen(); err == nil {
			*listen = l
		} else {
			log.Warn("petty.listen= not read; using the default", "listen", *listen, "err", err)
		}
	}

	var opts []guest.RunOption
	if *tokenFile != "" {
		tok, err := guest.ReadTokenFile(*tokenFile)
		if err != nil {
			log.Error("petty-agent", "err", err)
			os.Exit(2)
		}
		opts = append(opts, guest.WithToken(tok))
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := guest.Run(ctx, *listen, log, opts...); err != nil {
		log.Error("petty-agent", "err", err)
		os.Exit(1)
	}
}

// initramfsMain is main as the initramfs's /init. Run powers the guest off
// when it ends (PID 1 must not exit); exiting is the last resort.
func initramfsMain() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	listen, err := guest.BootInitramfs(log)
	if err != nil {
		log.Error("petty-agent: initramfs init", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := guest.Run(ctx, listen, log); err != nil {
		log.Error("petty-agent", "err", err)
		os.Exit(1)
	}
}

// flagSet reports whether the flag named name was given on the command line.
func flagSet(name string) (set bool) {
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
