// Command agentbench measures petty's guest agent protocol on the host: it
// starts cmd/petty-agent as a child process listening on a unix socket (the
// agent is not PID 1, so it never mounts, reaps or powers anything off), and
// times, over one connection each, 1000 Ping RPCs, 1000 "exec true" and 1000
// round trips to a trivial in-process unix-socket echo server (1 byte, then
// 64 bytes). It also reports the agent's static binary size and its idle RSS.
// The last line printed is
//
//	ratio ping/raw=<x> exec/raw=<y>
//
// with p50s, raw being the 1-byte echo.
//
// Usage:
//
//	go run ./cmd/agentbench [-agent PATH] [-n 1000]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pettyvm/petty/bench/internal/buildbin"
	"github.com/pettyvm/petty/bench/internal/stats"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("agentbench: ")
	agentBin := flag.String("agent", "", "petty-agent executable (default: build cmd/petty-agent with CGO_ENABLED=0 -ldflags='-s -w')")
	n := flag.Int("n", 1000, "calls per measurement")
	flag.Parse()
	if *n < 1 {
		log.Fatal("-n must be at least 1")
	}
	if err := run(*agentBin, *n); err != nil {
		log.Fatal(err)
	}
}

func run(agentBin string, n int) error {
	dir, err := os.MkdirTemp("/tmp", "agb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if agentBin == "" {
		agentBin, err = buildbin.Build(dir, "petty-agent", "github.com/pettyvm/petty/cmd/petty-agent",
			[]string{"CGO_ENABLED=0"}, "-trimpath", "-ldflags=-s -w")
		if err != nil {
			return err
		}
	}
	fi, err := os.Stat(agentBin)
	if err != nil {
		return err
	}
	ctx := context.Background()

	a, err := startAgent(ctx, agentBin, filepath.Join(dir, "agent.sock"))
	if err != nil {
		return err
	}
	defer a.stop()
	rssIdle, err := a.idleRSS()
	if err != nil {
		return err
	}
	echo, err := startEcho(filepath.Join(dir, "echo.sock"))
	if err != nil {
		return err
	}
	defer echo.Close()

	rpc, err := a.measure(ctx, n)
	if err != nil {
		return err
	}
	raw1, err := echo.measure(1, n)
	if err != nil {
		return err
	}
	raw64, err := echo.measure(64, n)
	if err != nil {
		return err
	}
	rssAfter, err := rss(a.cmd.Process.Pid)
	if err != nil {
		return err
	}

	fmt.Printf("agentbench: %d calls each over one unix-socket connection\n", n)
	fmt.Printf("agent binary: %s, %.2f MiB (static, CGO_ENABLED=0, -ldflags='-s -w')\n", agentBin, float64(fi.Size())/(1<<20))
	fmt.Printf("agent RSS: idle %d KiB (VmRSS 1s after start), %d KiB after the runs\n\n", rssIdle, rssAfter)
	fmt.Printf("%-22s %10s %10s\n", "measurement", "p50 µs", "p90 µs")
	for _, m := range []struct {
		name string
		s    samples
	}{{"raw echo 1 B", raw1}, {"raw echo 64 B", raw64}, {"agent Ping", rpc.ping}, {"agent Exec true", rpc.exec}} {
		fmt.Printf("%-22s %10.1f %10.1f\n", m.name, us(stats.Percentile(m.s, 50)), us(stats.Percentile(m.s, 90)))
	}
	raw := stats.Percentile(raw1, 50)
	fmt.Printf("ratio ping/raw=%.2f exec/raw=%.2f\n",
		stats.Ratio(stats.Percentile(rpc.ping, 50), raw), stats.Ratio(stats.Percentile(rpc.exec, 50), raw))
	return nil
}
