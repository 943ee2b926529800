package e2bserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	procpb "github.com/pettyvm/petty/e2b/envdpb/process"
	"github.com/pettyvm/petty/e2b/envdpb/process/processconnect"
	"github.com/pettyvm/petty/sandbox"
)

// KeepaliveHeader is the seconds between the keepalive events a client of
// Start or Connect asks for.
const KeepaliveHeader = "Keepalive-Ping-Interval"

// minKeepalive bounds how often keepalives are sent.
const minKeepalive = 100 * time.Millisecond

// processService is process.Process over a sandbox's background
// processes. Every command is one: Start starts it and follows its output;
// a client that goes away leaves it running, found again by its pid (the
// guest's). The Connect-Timeout-Ms of Start is the process's deadline: it
// is then terminated (SIGTERM, then SIGKILL to its whole group). Update
// (PTYs) and StreamInput answer unimplemented.
type processService struct {
	processconnect.UnimplementedProcessHandler
	s *Server

	mu sync.Mutex
	// tags maps a sandbox id and a process tag to the sandbox's pid.
	tags map[tagKey]int
	// pids maps a sandbox id and a guest pid to the sandbox's pid, for the
	// processes Start started (others are looked up in the sandbox's
	// table, which costs a copy of every process's buffered output).
	pids map[pidKey]int
}

type tagKey struct{ sandbox, tag string }

type pidKey struct {
	sandbox string
	guest   uint32
}

var _ processconnect.ProcessHandler = (*processService)(nil)

func newProcessService(s *Server) *processService {
	return &processService{s: s, tags: map[tagKey]int{}, pids: map[pidKey]int{}}
}

// guestPID is the pid E2B's clients see: the process's pid in the guest.
func guestPID(pi sandbox.ProcessInfo) uint32 { return uint32(pi.GuestPID) }

// find returns the sandbox's pid of the process sel names (a guest pid or
// a tag), preferring a running one.
func (p *processService) find(sb *sandbox.Sandbox, sel *procpb.ProcessSelector) (int, error) {
	switch s := sel.GetSelector().(type) {
	case *procpb.ProcessSelector_Pid:
		p.mu.Lock()
		pid, ok := p.pids[pidKey{sb.ID(), s.Pid}]
		p.mu.Unlock()
		if ok {
			return pid, nil
		}
		var found *sandbox.ProcessInfo
		for _, pi := range sb.Processes() {
			if guestPID(pi) == s.Pid && (found == nil || pi.Running) {
				found = &pi
			}
		}
		if found == nil {
			return 0, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with pid %d not found", s.Pid))
		}
		return found.PID, nil
	case *procpb.ProcessSelector_Tag:
		p.mu.Lock()
		pid, ok := p.tags[tagKey{sb.ID(), s.Tag}]
		p.mu.Unlock()
		if !ok {
			return 0, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with tag %q not found", s.Tag))
		}
		return pid, nil
	default:
		return 0, connect.NewError(connect.CodeInvalidArgument, errors.New("no process selector"))
	}
}

// findRunning is find for a process that must still run (not_found once
// it ended, as envd forgets ended processes).
func (p *processService) findRunning(sb *sandbox.Sandbox, sel *procpb.ProcessSelector) (int, error) {
	pid, err := p.find(sb, sel)
	if err != nil {
		return 0, err
	}
	if pi, err := sb.Process(pid); err != nil || !pi.Running {
		return 0, connect.NewError(connect.CodeNotFound, fmt.Errorf("process %d is not running", pid))
	}
	return pid, nil
}

// procError maps an error of the sandbox's process API.
func procError(err error) error {
	switch {
	case errors.Is(err, os.ErrProcessDone), errors.Is(err, sandbox.ErrNoProcess):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, os.ErrClosed):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	default:
		return rpcError(err)
	}
}

// Start implements process.Process.
func (p *processService) Start(ctx context.Context, req *connect.Request[procpb.StartRequest], stream *connect.ServerStream[procpb.StartResponse]) error {
	sb, u, err := call(ctx, req)
	if err != nil {
		return err
	}
	cfg := req.Msg.GetProcess()
	if cfg.GetCmd() == "" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("process.cmd is required"))
	}
	if req.Msg.Pty != nil {
		return connect.NewError(connect.CodeUnimplemented, errors.New("petty has no PTY processes"))
	}
	opts := sandbox.StartOptions{Args: append([]string{cfg.GetCmd()}, cfg.GetArgs()...), User: u.name,
		Stdin: req.Msg.Stdin == nil || req.Msg.GetStdin()}
	for _, k := range slices.Sorted(maps.Keys(cfg.GetEnvs())) {
		opts.Env = append(opts.Env, k+"="+cfg.GetEnvs()[k])
	}
	if cfg.Cwd != nil {
		opts.Dir = u.abs(cfg.GetCwd())
	}
	if dl, ok := ctx.Deadline(); ok {
		// The request's deadline is the process's: it is terminated then,
		// whether or not the client still listens.
		opts.Timeout = max(time.Until(dl), time.Millisecond)
	}
	pid, err := sb.Start(ctx, opts)
	if err != nil {
		return rpcError(err)
	}
	if tag := req.Msg.GetTag(); tag != "" {
		p.mu.Lock()
		p.tags[tagKey{sb.ID(), tag}] = pid
		p.mu.Unlock()
	}
	key := pidKey{sandbox: sb.ID()}
	defer func() {
		// Once it ended (or failed to be followed) the table knows it.
		if pi, err := sb.Process(pid); err != nil || !pi.Running {
			p.mu.Lock()
			delete(p.pids, key)
			p.mu.Unlock()
		}
	}()
	return p.follow(ctx, req.Header(), sb, pid, true, func(ev *procpb.ProcessEvent) error {
		if st := ev.GetStart(); st != nil {
			key.guest = st.GetPid()
			p.mu.Lock()
			p.pids[key] = pid
			p.mu.Unlock()
		}
		return stream.Send(&procpb.StartResponse{Event: ev})
	})
}

// Connect implements process.Process: the events of a running process
// from now on (its deadline ends the stream, not the process).
func (p *processService) Connect(ctx context.Context, req *connect.Request[procpb.ConnectRequest], stream *connect.ServerStream[procpb.ConnectResponse]) error {
	sb := sandboxFrom(ctx)
	pid, err := p.findRunning(sb, req.Msg.GetProcess())
	if err != nil {
		return err
	}
	return p.follow(ctx, req.Header(), sb, pid, false, func(ev *procpb.ProcessEvent) error {
		return stream.Send(&procpb.ConnectResponse{Event: ev})
	})
}

// follow streams the events of the process pid: start, the output it
// buffered so far when replay is set, its further output with keepalives
// at the interval the client asked for, and its end. It returns when the
// process ended or ctx ends (the process keeps running then).
func (p *processService) follow(ctx context.Context, h http.Header, sb *sandbox.Sandbox, pid int, replay bool, send func(*procpb.ProcessEvent) error) error {
	info, out, err := sb.Follow(ctx, pid)
	if err != nil {
		return procError(err)
	}
	if err := send(&procpb.ProcessEvent{Event: &procpb.ProcessEvent_Start{Start: &procpb.ProcessEvent_StartEvent{Pid: guestPID(info)}}}); err != nil {
		return err
	}
	if replay {
		for _, o := range []sandbox.Output{{Data: info.Stdout}, {Stderr: true, Data: info.Stderr}} {
			if len(o.Data) > 0 {
				if err := send(dataEvent(o)); err != nil {
					return err
				}
			}
		}
	}
	var tick <-chan time.Time
	if secs, err := strconv.ParseFloat(h.Get(KeepaliveHeader), 64); err == nil && secs > 0 {
		t := time.NewTicker(max(time.Duration(secs*float64(time.Second)), minKeepalive))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case o, ok := <-out:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return p.end(sb, pid, send)
			}
			if len(o.Data) > 0 {
				if err := send(dataEvent(o)); err != nil {
					return err
				}
			}
		case <-tick:
			if err := send(&procpb.ProcessEvent{Event: &procpb.ProcessEvent_Keepalive{Keepalive: &procpb.ProcessEvent_KeepAlive{}}}); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func dataEvent(o sandbox.Output) *procpb.ProcessEvent {
	d := &procpb.ProcessEvent_DataEvent{Output: &procpb.ProcessEvent_DataEvent_Stdout{Stdout: o.Data}}
	if o.Stderr {
		d.Output = &procpb.ProcessEvent_DataEvent_Stderr{Stderr: o.Data}
	}
	return &procpb.ProcessEvent{Event: &procpb.ProcessEvent_Data{Data: d}}
}

// end sends the end event of the ended process pid, as Go's os.ProcessState
// words it ("exit status 3", "signal: killed").
func (p *processService) end(sb *sandbox.Sandbox, pid int, send func(*procpb.ProcessEvent) error) error {
	pi, err := sb.Process(pid)
	if err != nil {
		return procError(err)
	}
	st := pi.Status
	ev := &procpb.ProcessEvent_EndEvent{ExitCode: int32(st.ExitCode), Exited: st.Signal == "",
		Status: fmt.Sprintf("exit status %d", st.ExitCode)}
	if st.Signal != "" {
		ev.Status = "signal: " + st.Signal
		if sig := unix.SignalNum(st.Signal); sig != 0 {
			ev.Status = "signal: " + syscall.Signal(sig).String()
		}
	}
	if pi.Err != nil {
		msg := pi.Err.Error()
		ev.Error = &msg
	}
	return send(&procpb.ProcessEvent{Event: &procpb.ProcessEvent_End{End: ev}})
}

// List implements process.Process: the running processes.
func (p *processService) List(ctx context.Context, req *connect.Request[procpb.ListRequest]) (*connect.Response[procpb.ListResponse], error) {
	sb := sandboxFrom(ctx)
	p.mu.Lock()
	tagOf := map[int]string{}
	for k, pid := range p.tags {
		if k.sandbox == sb.ID() {
			tagOf[pid] = k.tag
		}
	}
	p.mu.Unlock()
	res := &procpb.ListResponse{}
	for _, pi := range sb.Processes() {
		if !pi.Running || len(pi.Args) == 0 {
			continue
		}
		cfg := &procpb.ProcessConfig{Cmd: pi.Args[0], Args: pi.Args[1:], Envs: map[string]string{}}
		for _, kv := range pi.Env {
			k, v, _ := strings.Cut(kv, "=")
			cfg.Envs[k] = v
		}
		if pi.Dir != "" {
			cfg.Cwd = &pi.Dir
		}
		info := &procpb.ProcessInfo{Config: cfg, Pid: guestPID(pi)}
		if tag, ok := tagOf[pi.PID]; ok {
			info.Tag = &tag
		}
		res.Processes = append(res.Processes, info)
	}
	return connect.NewResponse(res), nil
}

// SendInput implements process.Process.
func (p *processService) SendInput(ctx context.Context, req *connect.Request[procpb.SendInputRequest]) (*connect.Response[procpb.SendInputResponse], error) {
	sb := sandboxFrom(ctx)
	pid, err := p.findRunning(sb, req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	in, ok := req.Msg.GetInput().GetInput().(*procpb.ProcessInput_Stdin)
	if !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("only stdin input: petty has no PTY processes"))
	}
	if err := sb.WriteStdin(ctx, pid, in.Stdin); err != nil {
		return nil, procError(err)
	}
	return connect.NewResponse(&procpb.SendInputResponse{}), nil
}

// CloseStdin implements process.Process.
func (p *processService) CloseStdin(ctx context.Context, req *connect.Request[procpb.CloseStdinRequest]) (*connect.Response[procpb.CloseStdinResponse], error) {
	sb := sandboxFrom(ctx)
	pid, err := p.findRunning(sb, req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := sb.CloseStdin(pid); err != nil {
		return nil, procError(err)
	}
	return connect.NewResponse(&procpb.CloseStdinResponse{}), nil
}

// SendSignal implements process.Process: SIGTERM or SIGKILL to the
// process's whole group.
func (p *processService) SendSignal(ctx context.Context, req *connect.Request[procpb.SendSignalRequest]) (*connect.Response[procpb.SendSignalResponse], error) {
	sb := sandboxFrom(ctx)
	var sig syscall.Signal
	switch req.Msg.GetSignal() {
	case procpb.Signal_SIGNAL_SIGKILL:
		sig = syscall.SIGKILL
	case procpb.Signal_SIGNAL_SIGTERM:
		sig = syscall.SIGTERM
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("unsupported signal %v", req.Msg.GetSignal()))
	}
	pid, err := p.findRunning(sb, req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := sb.Signal(ctx, pid, sig); err != nil {
		return nil, procError(err)
	}
	return connect.NewResponse(&procpb.SendSignalResponse{}), nil
}
