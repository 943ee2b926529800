// Command agentbench measures petty's guest agent protocol on the host: it
// starts cmd/petty-agent as a child process listening on a unix socket (the
// agent is not PID 1, so it never mounts, reaps or powers anything off) and
// compares its Ping and "exec true" with a raw echo over the same kind of
// connection: a unix socket to another process (agentbench re-executes
// itself as the echo server). It also times, for reference, a bare ttrpc
// Ping server (ttrpc's own floor), a prototype of custom framing without
// ttrpc's goroutine hops, and an echo served inside the benchmark process.
// Every measurement has its own connection; n calls of each are interleaved
// in rounds so that noise from the machine spreads over all of them. It also
// reports the agent's static binary size and its idle RSS. The last line
// printed is
//
//	ratio ping/raw=<x> exec/raw=<y>
//
// with p50s, raw being the cross-process echo of a ping-request-sized
// message.
//
// Usage:
//
//	go run ./cmd/agentbench [-agent PATH] [-compare PATH] [-n 1000] [-rounds 50] [-server-procs N]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containerd/ttrpc"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/bench/internal/buildbin"
	"github.com/pettyvm/petty/bench/internal/stats"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("agentbench: ")
	if ok, err := serveRole(); ok {
		if err != nil {
			log.Fatal(err)
		}
		return
	}
	agentBin := flag.String("agent", "", "petty-agent executable (default: build cmd/petty-agent with CGO_ENABLED=0 -ldflags='-s -w')")
	compare := flag.String("compare", "", "a second petty-agent executable whose Ping is measured alongside, for A/B comparisons")
	n := flag.Int("n", 1000, "calls per measurement")
	rounds := flag.Int("rounds", 50, "rounds the calls of each measurement are interleaved in")
	flag.IntVar(&serverProcs, "server-procs", 0, "GOMAXPROCS of the agent and the peer servers (default: inherited)")
	flag.Parse()
	if *n < 1 {
		log.Fatal("-n must be at least 1")
	}
	if err := run(*agentBin, *compare, *n, *rounds); err != nil {
		log.Fatal(err)
	}
}

func run(agentBin, compareBin string, n, rounds int) error {
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

	a, err := startAgent(agentBin, filepath.Join(dir, "agent.sock"))
	if err != nil {
		return err
	}
	defer a.stop()
	rssIdle, err := a.idleRSS()
	if err != nil {
		return err
	}
	peers := map[string]*childProc{}
	for _, role := range []string{"echo", "ttrpc", "frame"} {
		p, err := startPeer(role, filepath.Join(dir, role+".sock"))
		if err != nil {
			return err
		}
		defer p.stop()
		peers[role] = p
	}
	inproc, err := startInProcessEcho(filepath.Join(dir, "inproc.sock"))
	if err != nil {
		return err
	}
	defer inproc.Close()

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func(sock string) (net.Conn, error) {
		c, err := net.Dial("unix", sock)
		if err == nil && sock == a.sock {
			err = agent.Authenticate(ctx, c, "")
		}
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	reqSize, respSize := pingFrameSizes()
	var probes []*probe
	add := func(name, sock string, call func(net.Conn) func() error) error {
		c, err := dial(sock)
		if err != nil {
			return err
		}
		probes = append(probes, &probe{name: name, call: call(c)})
		return nil
	}
	echo := func(size int) func(net.Conn) func() error {
		return func(c net.Conn) func() error { return echoCall(c, size) }
	}
	ac, err := a.dial()
	if err != nil {
		return err
	}
	client := agent.NewClient(ac)
	defer client.Close()
	tc, err := peers["ttrpc"].dial()
	if err != nil {
		return err
	}
	ttc := ttrpc.NewClient(tc)
	defer ttc.Close()
	for _, p := range []struct {
		name, sock string
		call       func(net.Conn) func() error
	}{
		{"raw echo 1 B", peers["echo"].sock, echo(1)},
		{fmt.Sprintf("raw echo %d B", reqSize), peers["echo"].sock, echo(reqSize)},
		{"in-process echo 1 B", inproc.Addr().String(), echo(1)},
		{"sync client→sync server", peers["frame"].sock, syncPing},
		{"sync client→ttrpc server", peers["ttrpc"].sock, syncPing},
		{"sync client→agent", a.sock, syncPing},
	} {
		if err := add(p.name, p.sock, p.call); err != nil {
			return err
		}
	}
	fc, err := peers["frame"].dial()
	if err != nil {
		return err
	}
	ftc := ttrpc.NewClient(fc)
	defer ftc.Close()
	atc, err := a.dial()
	if err != nil {
		return err
	}
	attc := ttrpc.NewClient(atc)
	defer attc.Close()
	probes = append(probes,
		&probe{name: "ttrpc client→sync server", call: ttrpcPing(ctx, ftc)},
		&probe{name: "ttrpc client→ttrpc server", call: ttrpcPing(ctx, ttc)},
		&probe{name: "ttrpc client→agent", call: ttrpcPing(ctx, attc)},
		&probe{name: "agent Ping", call: func() error { _, err := client.Ping(ctx); return err }},
		&probe{name: "agent Exec true", call: func() error { return client.Exec(ctx, &agent.Cmd{Args: []string{"true"}}) }},
	)
	if compareBin != "" {
		b, err := startAgent(compareBin, filepath.Join(dir, "compare.sock"))
		if err != nil {
			return err
		}
		defer b.stop()
		bc, err := b.dial()
		if err != nil {
			return err
		}
		cc := agent.NewClient(bc)
		defer cc.Close()
		btc, err := b.dial()
		if err != nil {
			return err
		}
		bttc := ttrpc.NewClient(btc)
		defer bttc.Close()
		probes = append([]*probe{
			{name: "-compare agent Ping", call: func() error { _, err := cc.Ping(ctx); return err }},
			{name: "ttrpc client→-compare", call: ttrpcPing(ctx, bttc)},
		}, probes...)
	}
	if err := measureInterleaved(probes, n, rounds); err != nil {
		return err
	}
	rssAfter, err := rss(a.cmd.Process.Pid)
	if err != nil {
		return err
	}

	fmt.Printf("agentbench: %d calls each, interleaved in %d rounds, one unix-socket connection each, peers in separate processes unless noted\n", n, rounds)
	fmt.Printf("GOMAXPROCS: client %d, servers %s (%d CPUs)\n", runtime.GOMAXPROCS(0), procs(serverProcs), runtime.NumCPU())
	fmt.Printf("agent binary: %s, %.2f MiB (static, CGO_ENABLED=0, -ldflags='-s -w')\n", agentBin, float64(fi.Size())/(1<<20))
	fmt.Printf("agent RSS: idle %d KiB (VmRSS 1s after start), %d KiB after the runs\n", rssIdle, rssAfter)
	fmt.Printf("ping frames on the wire: request %d B, response %d B\n\n", reqSize, respSize)
	fmt.Printf("%-27s %10s %10s\n", "measurement", "p50 µs", "p90 µs")
	p50 := map[string]float64{}
	for _, p := range probes {
		p50[p.name] = us(stats.Percentile(p.s, 50))
		fmt.Printf("%-27s %10.1f %10.1f\n", p.name, p50[p.name], us(stats.Percentile(p.s, 90)))
	}
	byName := map[string]*probe{}
	for _, p := range probes {
		byName[p.name] = p
	}
	raw := byName[fmt.Sprintf("raw echo %d B", reqSize)] // the cross-process echo of a ping-request-sized message
	ping, exec := byName["agent Ping"], byName["agent Exec true"]
	fmt.Printf("ratio ping/raw=%.2f exec/raw=%.2f\n",
		stats.Ratio(stats.Percentile(ping.s, 50), stats.Percentile(raw.s, 50)),
		stats.Ratio(stats.Percentile(exec.s, 50), stats.Percentile(raw.s, 50)))
	return nil
}

func procs(n int) string {
	if n > 0 {
		return fmt.Sprint(n)
	}
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		return v
	}
	return "default"
}
