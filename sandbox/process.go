package sandbox

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Process is a background command of a sandbox. Its output is kept in two
// bounded buffers (the most recent bytes of each stream).
type Process struct {
	pid     int
	args    []string
	started time.Time
	cancel  context.CancelFunc
	stdout  *ring
	stderr  *ring
	done    chan struct{}

	// set before done is closed
	status ExitStatus
	err    error
}

// ProcessInfo describes a background process and its output so far.
type ProcessInfo struct {
	PID     int
	Args    []string
	Started time.Time
	Running bool
	// Status is how it ended; meaningful once Running is false.
	Status ExitStatus
	// Err is why it could not run or was cut short (killed, sandbox gone).
	Err error
	// Stdout and Stderr are the buffered output; StdoutDropped and
	// StderrDropped count the older bytes the buffers no longer hold.
	Stdout, Stderr               []byte
	StdoutDropped, StderrDropped int64
}

// processTable holds a sandbox's background processes.
type processTable struct {
	mu    sync.Mutex
	next  int
	byPID map[int]*Process
	wg    sync.WaitGroup
}

// MaxProcesses is the most background processes a sandbox keeps; the
// oldest finished one is forgotten to make room.
const MaxProcesses = 64

// forgetOldestFinished drops the finished process with the lowest pid.
// t.mu is held.
func (t *processTable) forgetOldestFinished() bool {
	oldest := 0
	for pid, p := range t.byPID {
		select {
		case <-p.done:
			if oldest == 0 || pid < oldest {
				oldest = pid
			}
		default:
		}
	}
	if oldest == 0 {
		return false
	}
	delete(t.byPID, oldest)
	return true
}

// wait waits for every process goroutine to end.
func (t *processTable) wait() { t.wg.Wait() }

// StartOptions describe a background process.
type StartOptions struct {
	Args    []string
	Env     []string
	Dir     string
	User    string
	Timeout time.Duration
	// BufferSize bounds the bytes kept of each of stdout and stderr.
	// Default: 1 MiB.
	BufferSize int
}

// Start runs a command in the background, bounded by the sandbox's life
// (not by ctx, which only guards the call), and returns its pid, an id
// local to the sandbox.
func (s *Sandbox) Start(ctx context.Context, o StartOptions) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.alive(); err != nil {
		return 0, err
	}
	if len(o.Args) == 0 || o.Args[0] == "" {
		return 0, &InvalidError{Field: "command", Problem: "empty"}
	}
	size := o.BufferSize
	if size <= 0 {
		size = defaultProcessBuffers
	}
	pctx, cancel := context.WithCancel(s.life)
	p := &Process{args: slices.Clone(o.Args), started: time.Now(), cancel: cancel,
		stdout: newRing(size), stderr: newRing(size), done: make(chan struct{})}
	t := &s.procs
	t.mu.Lock()
	if len(t.byPID) >= MaxProcesses && !t.forgetOldestFinished() {
		t.mu.Unlock()
		cancel()
		return 0, &LimitError{Resource: "processes", Requested: 1, InUse: MaxProcesses, Limit: MaxProcesses}
	}
	t.next++
	p.pid = t.next
	t.byPID[p.pid] = p
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer cancel()
		p.status, p.err = s.Exec(pctx, ExecOptions{Args: o.Args, Env: o.Env, Dir: o.Dir, User: o.User,
			Stdout: p.stdout, Stderr: p.stderr, Timeout: o.Timeout})
		close(p.done)
	}()
	return p.pid, nil
}

func (s *Sandbox) process(pid int) (*Process, error) {
	s.procs.mu.Lock()
	defer s.procs.mu.Unlock()
	p, ok := s.procs.byPID[pid]
	if !ok {
		return nil, fmt.Errorf("%w: pid %d in sandbox %s", ErrNoProcess, pid, s.id)
	}
	return p, nil
}

func (p *Process) info() ProcessInfo {
	pi := ProcessInfo{PID: p.pid, Args: slices.Clone(p.args), Started: p.started, Running: true}
	select {
	case <-p.done:
		pi.Running, pi.Status, pi.Err = false, p.status, p.err
	default:
	}
	pi.Stdout, pi.StdoutDropped = p.stdout.Bytes()
	pi.Stderr, pi.StderrDropped = p.stderr.Bytes()
	return pi
}

// Process describes the background process pid with its output so far.
func (s *Sandbox) Process(pid int) (ProcessInfo, error) {
	p, err := s.process(pid)
	if err != nil {
		return ProcessInfo{}, err
	}
	return p.info(), nil
}

// Processes describes every background process, by pid.
func (s *Sandbox) Processes() []ProcessInfo {
	s.procs.mu.Lock()
	ps := make([]*Process, 0, len(s.procs.byPID))
	for _, p := range s.procs.byPID {
		ps = append(ps, p)
	}
	s.procs.mu.Unlock()
	slices.SortFunc(ps, func(a, b *Process) int { return a.pid - b.pid })
	out := make([]ProcessInfo, len(ps))
	for i, p := range ps {
		out[i] = p.info()
	}
	return out
}

// Kill kills the background process pid's whole process group (SIGKILL:
// the agent has no other signal) and waits, within ctx, for it to end.
func (s *Sandbox) Kill(ctx context.Context, pid int) error {
	p, err := s.process(pid)
	if err != nil {
		return err
	}
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
