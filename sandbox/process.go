package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pettyvm/petty/agent"
)

// Process is a background command of a sandbox. Its output is kept in two
// bounded buffers (the most recent bytes of each stream) and fanned out to
// its followers (see Sandbox.Follow).
type Process struct {
	pid      int
	guestPID int64
	args     []string
	env      []string
	dir      string
	user     string
	started  time.Time
	cancel   context.CancelFunc
	cmd      *agent.Process
	stdin    *stdinPipe // nil unless started with Stdin
	out      *outputFan
	done     chan struct{}

	// set before done is closed
	status ExitStatus
	err    error
}

// ProcessInfo describes a background process and its output so far.
type ProcessInfo struct {
	// PID is the process's id local to the sandbox (what Process, Signal,
	// Kill, Follow and WriteStdin take).
	PID int
	// GuestPID is the process id of the command in the guest (the leader
	// of its process group).
	GuestPID int64
	// Args, Env, Dir and User are what it was started with (Env: the
	// entries StartOptions added, without the sandbox's own).
	Args []string
	Env  []string
	Dir  string
	User string
	// Stdin reports that it was started with StartOptions.Stdin.
	Stdin   bool
	Started time.Time
	Running bool
	// Status is how it ended; meaningful once Running is false.
	Status ExitStatus
	// Err is why it was cut short (its sandbox destroyed, the connection
	// to the agent lost).
	Err error
	// Stdout and Stderr are the buffered output; StdoutDropped and
	// StderrDropped count the older bytes the buffers no longer hold.
	Stdout, Stderr               []byte
	StdoutDropped, StderrDropped int64
}

// processTable holds a sandbox's background processes.
type processTable struct {
	mu       sync.Mutex
	next     int
	starting int // reserved by Starts under way
	byPID    map[int]*Process
	wg       sync.WaitGroup
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

// reserve makes room for one more process, or fails with a *LimitError.
func (t *processTable) reserve() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byPID)+t.starting >= MaxProcesses && !t.forgetOldestFinished() {
		return &LimitError{Resource: "processes", Requested: 1, InUse: len(t.byPID) + t.starting, Limit: MaxProcesses}
	}
	t.starting++
	t.wg.Add(1)
	return nil
}

// unreserve gives back a reservation whose start failed.
func (t *processTable) unreserve() {
	t.mu.Lock()
	t.starting--
	t.mu.Unlock()
	t.wg.Done()
}

// add turns a reservation into p, giving it its pid.
func (t *processTable) add(p *Process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.starting--
	t.next++
	p.pid = t.next
	t.byPID[p.pid] = p
}

// wait waits for every process goroutine to end.
func (t *processTable) wait() { t.wg.Wait() }

// StartOptions describe a background process.
type StartOptions struct {
	Args []string
	Env  []string
	Dir  string
	// User runs it as this user of the guest (see ExecOptions.User).
	User string
	// Timeout, if positive, terminates its process group after it (see
	// ExecOptions.Timeout); 0: it lives as long as the sandbox.
	Timeout   time.Duration
	KillGrace time.Duration
	// Stdin keeps the process's standard input open for WriteStdin until
	// CloseStdin; without it stdin is /dev/null.
	Stdin bool
	// BufferSize bounds the bytes kept of each of stdout and stderr.
	// Default: 1 MiB.
	BufferSize int
}

// Start runs a command in the background, bounded by the sandbox's life
// (not by ctx, which only guards the call), and returns its pid, an id
// local to the sandbox. It returns once the command runs in the guest: a
// program that is not found is an error of Start (fs.ErrNotExist).
func (s *Sandbox) Start(ctx context.Context, o StartOptions) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	size := o.BufferSize
	if size <= 0 {
		size = defaultProcessBuffers
	}
	p := &Process{args: slices.Clone(o.Args), env: slices.Clone(o.Env), dir: o.Dir, user: o.User,
		started: time.Now(), out: newOutputFan(size), done: make(chan struct{})}
	eo := ExecOptions{Args: o.Args, Env: o.Env, Dir: o.Dir, User: o.User,
		Stdout: p.out.writer(false), Stderr: p.out.writer(true), Timeout: o.Timeout, KillGrace: o.KillGrace}
	if o.Stdin {
		p.stdin = newStdinPipe()
		eo.Stdin = p.stdin
	}
	cmd, err := s.agentCmd(eo)
	if err != nil {
		return 0, err
	}
	t := &s.procs
	if err := t.reserve(); err != nil {
		return 0, err
	}
	pctx, cancel := context.WithCancel(s.life)
	p.cancel = cancel
	stop := context.AfterFunc(ctx, cancel)
	ac, err := s.client.Start(pctx, cmd)
	if !stop() && err == nil {
		err = ctx.Err()
		_ = ac.Wait() // ctx ended: the command is being killed
	}
	if err != nil {
		cancel()
		t.unreserve()
		if p.stdin != nil {
			p.stdin.stop()
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if err := s.alive(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("sandbox %s: start %q: %w", s.id, o.Args[0], err)
	}
	p.cmd, p.guestPID = ac, ac.PID()
	t.add(p)
	go func() {
		defer t.wg.Done()
		defer cancel()
		st, err := s.exitStatus(pctx, p.started, o.Args[0], ac.Wait())
		if errors.Is(err, context.Canceled) && s.alive() != nil {
			err = s.alive()
		}
		if p.stdin != nil {
			p.stdin.stop()
		}
		p.status, p.err = st, err
		close(p.done)
		p.out.end()
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

// info describes p; the output fan's lock is held by the caller or not at
// all (held, the output is consistent with the followers' first items).
func (p *Process) info() ProcessInfo {
	pi := ProcessInfo{PID: p.pid, GuestPID: p.guestPID, Args: slices.Clone(p.args), Env: slices.Clone(p.env),
		Dir: p.dir, User: p.user, Stdin: p.stdin != nil, Started: p.started, Running: true}
	select {
	case <-p.done:
		pi.Running, pi.Status, pi.Err = false, p.status, p.err
	default:
	}
	pi.Stdout, pi.StdoutDropped = p.out.stdout.Bytes()
	pi.Stderr, pi.StderrDropped = p.out.stderr.Bytes()
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

// running returns the process pid if it still runs, else an error wrapping
// ErrNoProcess or os.ErrProcessDone.
func (s *Sandbox) running(pid int) (*Process, error) {
	p, err := s.process(pid)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		return nil, fmt.Errorf("sandbox %s: pid %d: %w", s.id, pid, os.ErrProcessDone)
	default:
		return p, nil
	}
}

// Signal sends sig to the background process pid's whole process group in
// the guest. It fails with ErrNoProcess for an unknown pid and
// os.ErrProcessDone once the process ended.
func (s *Sandbox) Signal(ctx context.Context, pid int, sig syscall.Signal) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if sig <= 0 || sig > maxSignal {
		return &InvalidError{Field: "signal", Problem: fmt.Sprintf("%d is not a signal number", int(sig))}
	}
	p, err := s.running(pid)
	if err != nil {
		return err
	}
	if err := p.cmd.Signal(sig); err != nil {
		return fmt.Errorf("sandbox %s: signalling pid %d: %w", s.id, pid, err)
	}
	return nil
}

// Kill sends SIGKILL to the background process pid's whole process group
// and waits, within ctx, for it to end (its status then says SIGKILL).
// Killing a process that already ended is not an error.
func (s *Sandbox) Kill(ctx context.Context, pid int) error {
	p, err := s.process(pid)
	if err != nil {
		return err
	}
	if p.cmd.Kill() != nil {
		p.cancel() // the stream is gone: abandoning it kills the group too
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.cancel()
		return ctx.Err()
	}
}
