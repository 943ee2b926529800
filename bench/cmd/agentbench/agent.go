package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pettyvm/petty/agent"
)

type samples = []time.Duration

// agentProc is a petty-agent child process serving a unix socket.
type agentProc struct {
	cmd     *exec.Cmd
	sock    string
	started time.Time
}

// startAgent runs bin --listen unix://sock and waits for the socket to accept.
func startAgent(ctx context.Context, bin, sock string) (*agentProc, error) {
	cmd := exec.Command(bin, "--listen", "unix://"+sock)
	cmd.Stderr = os.Stderr // its log: one line at start
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &agentProc{cmd: cmd, sock: sock, started: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return a, nil
		}
		select {
		case <-ctx.Done():
			a.stop()
			return nil, fmt.Errorf("agent socket %s: %w", sock, err)
		case <-time.After(time.Millisecond):
		}
	}
}

// stop ends the agent (SIGTERM, which it handles) and reaps it.
func (a *agentProc) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
	}
}

// idleRSS waits until a second after the agent started and returns its VmRSS.
func (a *agentProc) idleRSS() (int, error) {
	time.Sleep(time.Until(a.started.Add(time.Second)))
	return rss(a.cmd.Process.Pid)
}

// rss returns VmRSS of pid in KiB.
func rss(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

type rpcResults struct{ ping, exec samples }

// measure times n Pings and n "exec true" on one connection, after a short
// warm-up of each.
func (a *agentProc) measure(ctx context.Context, n int) (rpcResults, error) {
	conn, err := net.Dial("unix", a.sock)
	if err != nil {
		return rpcResults{}, err
	}
	c := agent.NewClient(conn)
	defer c.Close()
	ping := func() error { _, err := c.Ping(ctx); return err }
	execTrue := func() error { return c.Exec(ctx, &agent.Cmd{Args: []string{"true"}}) }
	var r rpcResults
	if r.ping, err = timeN(ping, n); err != nil {
		return r, fmt.Errorf("ping: %w", err)
	}
	if r.exec, err = timeN(execTrue, n); err != nil {
		return r, fmt.Errorf("exec true: %w", err)
	}
	return r, nil
}

// timeN calls f n/10 times to warm up, then n times, timing each call.
func timeN(f func() error, n int) (samples, error) {
	for range max(n/10, 1) {
		if err := f(); err != nil {
			return nil, err
		}
	}
	out := make(samples, 0, n)
	for range n {
		t := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	return out, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
