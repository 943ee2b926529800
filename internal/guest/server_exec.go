package guest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

const (
	// defaultPath is PATH for commands when neither the request nor the
	// agent's environment has one (a bare guest init has no environment).
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// outputGrace is how long output pipes may stay open after the command
	// exited (background children holding them); then whatever is buffered
	// is drained and the rest dropped.
	outputGrace = 100 * time.Millisecond
	// drainLimit bounds the final non-blocking drain of a pipe.
	drainLimit = 1 << 20
	// maxSignal is the highest signal number (SIGRTMAX).
	maxSignal = 64
)

// Exec runs one command. The stream carries: start, then stdin / stdin_close
// / credit / kill from the client; started_pid, stdout / stderr (at most the
// granted credits), stdin credits and finally exit from the agent.
func (s *service) Exec(ctx context.Context, stream execStream) error {
	if s.srv.inertOnly {
		return errorf(wire.PermissionDenied, "exec disabled")
	}
	in, err := stream.Recv()
	if err != nil {
		return err
	}
	start := in.GetStart()
	if start == nil || len(start.Args) == 0 || start.Args[0] == "" {
		return errorf(wire.InvalidArgument, "exec: the first message must be a start with non-empty args")
	}
	if start.MaxOutput < 0 || start.TimeoutNs < 0 || start.KillGraceNs < 0 {
		return errorf(wire.InvalidArgument, "exec: negative max_output, timeout or kill_grace")
	}

	cmd, err := buildCmd(start, s.srv.guest != nil)
	if err != nil {
		return err
	}
	newPipes := newExecPipes
	if start.Tty {
		newPipes = newTTYPipes
	}
	pipes, err := newPipes(cmd, start.Stdin)
	if err != nil {
		return err
	}
	defer pipes.closeParent()
	var gr *reaper
	if s.srv.guest != nil {
		gr = s.srv.guest.reaper
	}
	p, err := startProcess(cmd, gr)
	pipes.closeChild()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	// The client going away (or this handler returning early) kills the
	// process group; once the leader exited this is a no-op.
	context.AfterFunc(ctx, p.killGroup)

	// A timeout terminates the whole group: SIGTERM, SIGKILL after the
	// grace; the exit status is sent once the group is gone.
	var timeout *execTimeout
	if start.TimeoutNs > 0 {
		grace := defaultKillGrace
		if start.KillGraceNs > 0 {
			grace = time.Duration(start.KillGraceNs)
		}
		timeout = startTimeout(ctx, p, time.Duration(start.TimeoutNs), grace)
	}
	defer func() {
		cancel()
		timeout.finish()
	}()

	if err := stream.Send(&agentpb.ExecOutput{Msg: &agentpb.ExecOutput_StartedPid{StartedPid: int64(p.pid)}}); err != nil {
		return err
	}

	var exitSent atomic.Bool // set before the exit status is sent
	credits := wire.NewWindow(wire.OutputWindow)
	stdinQ := make(chan []byte, wire.InputWindow)
	clientDone := make(chan struct{})
	// The receive loop is not in wg: it ends when the stream's context is
	// cancelled after this handler returns.
	go func() {
		defer close(clientDone)
		stdinOpen := true
		defer func() {
			if stdinOpen {
				close(stdinQ)
			}
		}()
		for {
			in, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) || !exitSent.Load() {
					// The connection is gone, or the host closed its side
					// before the exit status: it abandoned the call.
					cancel()
				}
				return
			}
			switch m := in.Msg.(type) {
			case *agentpb.ExecInput_Stdin:
				if !stdinOpen {
					continue
				}
				select {
				case stdinQ <- m.Stdin:
				default:
					s.srv.logger().Warn("exec: client overran its stdin window, killing", "pid", p.pid)
					cancel()
					return
				}
			case *agentpb.ExecInput_StdinClose:
				if stdinOpen {
					stdinOpen = false
					close(stdinQ)
				}
			case *agentpb.ExecInput_Credit:
				credits.Grant(int(m.Credit))
			case *agentpb.ExecInput_Kill:
				p.killGroup()
			case *agentpb.ExecInput_Signal:
				if m.Signal > 0 && m.Signal <= maxSignal {
					p.signalGroup(unix.Signal(m.Signal))
				}
			case *agentpb.ExecInput_Resize:
				pipes.resize(m.Resize)
			}
		}
	}()

	if pipes.stdinW != nil {
		wg.Go(func() { forwardStdin(ctx, stream, stdinQ, pipes.stdinW) })
	}

	out := &outputLimiter{max: start.MaxOutput}
	var pumps sync.WaitGroup
	pumps.Go(func() {
		pumpOutput(ctx, stream, credits, out, pipes.stdoutR, func(b []byte) *agentpb.ExecOutput {
			return &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Stdout{Stdout: b}}
		})
	})
	pumps.Go(func() {
		pumpOutput(ctx, stream, credits, out, pipes.stderrR, func(b []byte) *agentpb.ExecOutput {
			return &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Stderr{Stderr: b}}
		})
	})

	<-p.done
	timedOut := timeout.finish()
	// Pipes normally reach EOF right away. If a background child still holds
	// them, stop waiting after a grace period: the pumps then drain what is
	// buffered without blocking.
	pumpsDone := make(chan struct{})
	go func() { pumps.Wait(); close(pumpsDone) }()
	select {
	case <-pumpsDone:
	case <-time.After(outputGrace):
		now := time.Now()
		pipes.stdoutR.SetReadDeadline(now)
		pipes.stderrR.SetReadDeadline(now)
		<-pumpsDone
	}
	if pipes.stdinW != nil {
		pipes.stdinW.Close() // unblocks a write to a pipe nobody reads
	}

	if ctx.Err() != nil {
		return ctx.Err()
	}
	exit := &agentpb.ExecExit{Truncated: out.truncated(), TimedOut: timedOut}
	ws := p.status
	switch {
	case ws.Signaled():
		exit.Code = -1
		exit.Signal = unix.SignalName(ws.Signal())
	default:
		exit.Code = int32(ws.ExitStatus())
	}
	exitSent.Store(true)
	if err := stream.Send(&agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Exit{Exit: exit}}); err != nil {
		return err
	}
	select {
	case <-clientDone:
	case <-ctx.Done():
	case <-time.After(finalWait):
	}
	return nil
}

// buildCmd turns a start message into an exec.Cmd in its own process group,
// as start.User (see lookupIdentity), with its environment and working
// directory (commandEnv, commandDir); guestInit says the agent is the
// guest's init.
func buildCmd(start *agentpb.ExecStart, guestInit bool) (*exec.Cmd, error) {
	if err := checkRoot(start.Root); err != nil {
		return nil, err
	}
	id, err := lookupIdentity(start.User)
	if err != nil {
		return nil, err
	}
	env := commandEnv(id, guestInit, start.Env)
	var pathEnv string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	name, err := lookPath(start.Root, start.Args[0], pathEnv)
	if err != nil {
		return nil, err
	}
	dir := commandDir(start.Dir, id, guestInit)
	if start.Root != "" && start.Dir == "" {
		dir = "/"
	}
	if fi, err := os.Stat(inRoot(start.Root, dir)); dir != "" && (err != nil || !fi.IsDir()) {
		return nil, errorf(wire.InvalidArgument, "exec: working directory %q: not a directory (%v)", dir, err)
	}
	cmd := &exec.Cmd{
		Path:        name,
		Args:        start.Args,
		Env:         env,
		Dir:         dir,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Credential: id.cred},
	}
	applyContainer(start, cmd.SysProcAttr)
	return cmd, nil
}

// lookPath resolves file against the command's own PATH (exec.LookPath would
// use the agent's), in the directory root the command is chrooted in ("" for
// none); the result is a path inside root.
func lookPath(root, file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if executableIn(root, p) {
			return p, nil
		}
	}
	return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
}

// execPipes are the command's stdio pipes; the agent keeps the parent ends.
type execPipes struct {
	tty              *os.File // a terminal's master (stdoutR too), or nil
	stdinR, stdinW   *os.File
	stdoutR, stdoutW *os.File
	stderrR, stderrW *os.File
}

func newExecPipes(cmd *exec.Cmd, stdin bool) (_ *execPipes, retErr error) {
	p := &execPipes{}
	defer func() {
		if retErr != nil {
			p.closeChild()
			p.closeParent()
		}
	}()
	var err error
	if p.stdoutR, p.stdoutW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if p.stderrR, p.stderrW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if stdin {
		if p.stdinR, p.stdinW, err = os.Pipe(); err != nil {
			return nil, err
		}
		cmd.Stdin = p.stdinR
	}
	cmd.Stdout = p.stdoutW
	cmd.Stderr = p.stderrW
	return p, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

func (p *execPipes) closeChild()  { closeAll(p.stdinR, p.stdoutW, p.stderrW) }
func (p *execPipes) closeParent() { closeAll(p.stdinW, p.stdoutR, p.stderrR) }

// forwardStdin writes queued stdin chunks into the command and grants the
// client one credit per chunk taken off the queue. After a write error (the
// command closed stdin) chunks are discarded but still credited.
func forwardStdin(ctx context.Context, stream execStream, q <-chan []byte, w *os.File) {
	broken := false
	for {
		select {
		case <-ctx.Done():
			return
		case b, ok := <-q:
			if !ok {
				w.Close()
				return
			}
			if !broken {
				if _, err := w.Write(b); err != nil {
					broken = true
				}
			}
			if ctx.Err() != nil {
				return
			}
			if err := stream.Send(&agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Credit{Credit: 1}}); err != nil {
				return
			}
		}
	}
}

// outputLimiter enforces Cmd.MaxOutput across stdout and stderr.
type outputLimiter struct {
	mu    sync.Mutex
	max   int64 // 0: unlimited
	sent  int64
	trunc bool
}

// allow returns the part of b that may still be sent.
func (o *outputLimiter) allow(b []byte) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.max > 0 {
		room := o.max - o.sent
		if room < int64(len(b)) {
			o.trunc = true
			b = b[:max(room, 0)]
		}
	}
	o.sent += int64(len(b))
	return b
}

func (o *outputLimiter) truncated() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.trunc
}

// pumpOutput streams r to the client, one credit per message. Output over the
// limit is read and dropped so the command never blocks on a full pipe.
func pumpOutput(ctx context.Context, stream execStream, credits *wire.Window, lim *outputLimiter, r *os.File, msg func([]byte) *agentpb.ExecOutput) {
	buf := make([]byte, wire.ChunkSize)
	send := func(b []byte) bool {
		b = lim.allow(b)
		if len(b) == 0 {
			return true
		}
		if credits.Take(ctx) != nil {
			return false
		}
		return stream.Send(msg(b)) == nil
	}
	for {
		n, err := r.Read(buf)
		if n > 0 && !send(buf[:n]) {
			return
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			drainPipe(r, buf, send)
		}
		return
	}
}

// drainPipe reads what is buffered in r without blocking, up to drainLimit.
func drainPipe(r *os.File, buf []byte, send func([]byte) bool) {
	if err := r.SetReadDeadline(time.Time{}); err != nil {
		return
	}
	rc, err := r.SyscallConn()
	if err != nil {
		return
	}
	for total := 0; total < drainLimit; {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true // never wait for readiness
		}); err != nil || rerr != nil || n <= 0 {
			return
		}
		total += n
		if !send(buf[:n]) {
			return
		}
	}
}
