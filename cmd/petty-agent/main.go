// Command petty-agent is petty's guest agent. It runs inside the microVM
// (usually as PID 1) and serves the protocol of package
// github.com/pettyvm/petty/agent on AF_VSOCK, a unix socket, or a
// virtio-serial port.
//
// Usage:
//
//	petty-agent [--listen vsock://:1024 | unix:///path | serial:///dev/virtio-ports/NAME] [--debug]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pettyvm/petty/agent"
)

func main() {
	listen := flag.String("listen", agent.DefaultListen, "where to serve: vsock://:PORT, unix:///path or serial:///dev/virtio-ports/NAME")
	debug := flag.Bool("debug", false, "log debug messages")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(agent.Version)
		return
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := agent.Run(ctx, *listen, log); err != nil {
		log.Error("petty-agent", "err", err)
		os.Exit(1)
	}
}
