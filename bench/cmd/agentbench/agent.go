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

// childProc is a child process (the agent or a peer server) serving a
// unix socket.
type childProc struct {
	cmd     *exec.Cmd
	sock    string
	started time.Time
	auth    bool // an agent: connections start with agent.Authenticate
}

// startAgent runs bin --listen unix://sock and waits for the socket to accept.
func startAgent(bin, sock string) (*childProc, error) {
	cmd := exec.Command(bin, "--listen", "unix://"+sock)
	cmd.Env = serverEnv()
	cmd.Stderr = os.Stderr // its log: one line at start
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	a, err := startChild(cmd, sock)
	if a != nil {
		a.auth = true
	}
	return a, err
}

// serverProcs, when positive, is GOMAXPROCS for the agent and the peer
// servers (-server-procs).
var serverProcs int

// serverEnv returns the environment of the agent and the peer servers.
func serverEnv(extra ...string) []string {
	env := append(os.Environ(), extra...)
	if serverProcs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(serverProcs))
	}
	return env
}

// startChild starts cmd and waits for sock to accept.
func startChild(cmd *exec.Cmd, sock string) (*childProc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &childProc{cmd: cmd, sock: sock, started: time.Now()}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return a, nil
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("%s: socket %s: %w", cmd.Path, sock, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// dial opens one connection to the child's socket.
func (a *childProc) dial() (net.Conn, error) {
	c, err := net.Dial("unix", a.sock)
	if err != nil || !a.auth {
		return c, err
	}
	// The agent runs without a token: any is accepted.
	if err := agent.Authenticate(context.Background(), c, ""); err != nil {
		return nil, err
	}
	return c, nil
}

// stop ends the child (SIGTERM, which the agent handles) and reaps it.
func (a *childProc) stop() {
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
func (a *childProc) idleRSS() (int, error) {
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

// probe is one measurement: a call repeated on its own connection.
type probe struct {
	name string
	call func() error
	s    samples
}

// measureInterleaved warms each probe up with n/10 calls, then times n calls
// of each in rounds of n/rounds calls, rotating the order every round, so
// that noise from other work on the machine spreads over all probes alike.
func measureInterleaved(probes []*probe, n, rounds int) error {
	for _, p := range probes {
		for range max(n/10, 1) {
			if err := p.call(); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
		p.s = make(samples, 0, n)
	}
	rounds = min(max(rounds, 1), n)
	for r := range rounds {
		calls := n/rounds + btoi(r < n%rounds)
		for i := range probes {
			p := probes[(i+r)%len(probes)]
			for range calls {
				t := time.Now()
				if err := p.call(); err != nil {
					return fmt.Errorf("%s: %w", p.name, err)
				}
				p.s = append(p.s, time.Since(t))
			}
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
