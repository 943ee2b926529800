package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/protobuf"
	"github.com/containerd/containerd/runtime"
	"github.com/containerd/containerd/runtime/v2/shim"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/emptypb"
)

// service is the task service of one shim: one pod, one VM.
type service struct {
	ctx       context.Context // the shim's lifetime: ends at Shutdown
	id        string
	publisher shim.Publisher
	shutdown  func()

	mu         sync.Mutex
	pod        *pod
	containers map[string]*container
}

func newService(ctx context.Context, id string, publisher shim.Publisher, shutdown func()) (shim.Shim, error) {
	return &service{ctx: ctx, id: id, publisher: publisher, shutdown: shutdown, containers: map[string]*container{}}, nil
}

// container is a task: its root file system and processes.
type container struct {
	svc    *service
	pod    *pod
	id     string
	bundle string
	init   *process
	execs  map[string]*process
	// hasDrive: the root file system is the VM's drive (block mode).
	hasDrive bool
}

// guestRoot is the container's root file system in the guest.
func (c *container) guestRoot() string { return guestShare + "/" + c.id }

// hostRoot is the bind of the root file system in the shared directory.
func (c *container) hostRoot() string { return filepath.Join(c.pod.shareDir(), c.id) }

func (s *service) publish(topic string, ev any) {
	ns, _ := namespaces.Namespace(s.ctx)
	ctx := namespaces.WithNamespace(context.Background(), ns)
	if err := s.publisher.Publish(ctx, topic, ev); err != nil {
		log.G(s.ctx).WithError(err).Warn("publishing " + topic)
	}
}

func (s *service) get(id, execID string) (*container, *process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, nil, errdefs.ToGRPCf(errdefs.ErrNotFound, "container %s", id)
	}
	if execID == "" {
		return c, c.init, nil
	}
	p, ok := c.execs[execID]
	if !ok {
		return nil, nil, errdefs.ToGRPCf(errdefs.ErrNotFound, "exec %s of %s", execID, id)
	}
	return c, p, nil
}

// Create boots the pod's VM for its first container, brings the root file
// system to the guest and prepares it; the process starts with Start.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, retErr error) {
	spec, err := readBundleSpec(r.Bundle)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if spec.Process == nil {
		return nil, errdefs.ToGRPCf(errdefs.ErrInvalidArgument, "spec has no process")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.containers[r.ID]; ok {
		return nil, errdefs.ToGRPCf(errdefs.ErrAlreadyExists, "container %s", r.ID)
	}
	c := &container{svc: s, id: r.ID, bundle: r.Bundle, execs: map[string]*process{}}
	if err := c.mountHostRoot(r.Rootfs); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if s.pod == nil {
		be, err := selectBackend()
		if err != nil {
			c.unmountHostRoot()
			return nil, errdefs.ToGRPCf(errdefs.ErrInvalidArgument, "%v", err)
		}
		ns, _ := namespaces.Namespace(ctx)
		mem, cpus := vmSize(spec)
		o := podOptions{dir: filepath.Join(stateRoot, ns+"-"+s.id), memMiB: mem, vcpus: cpus, backend: be}
		if be.Block {
			if o.rootImage, err = c.makeRootImage(ctx, o.dir); err != nil {
				(&pod{dir: o.dir}).removeDir()
				c.unmountHostRoot()
				return nil, errdefs.ToGRPC(err)
			}
		}
		p, err := startPod(ctx, o, slog.Default())
		if err != nil {
			c.unmountHostRoot()
			return nil, errdefs.ToGRPCf(errdefs.ErrUnavailable, "booting the pod's VM: %v", err)
		}
		s.pod = p
		c.hasDrive = be.Block
	} else if s.pod.block {
		c.unmountHostRoot()
		return nil, errdefs.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s: %v", r.ID, ErrNoHotplug)
	}
	c.pod = s.pod
	if err := c.mountRoot(ctx); err != nil {
		c.unmountRoot(context.Background())
		return nil, errdefs.ToGRPC(err)
	}
	defer func() {
		if retErr != nil {
			c.unmountRoot(context.Background())
		}
	}()
	c.init = newProcess(c, "", spec.Process, r.Terminal, r.Stdin, r.Stdout, r.Stderr)
	if err := c.init.openStdin(); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	s.containers[r.ID] = c
	s.publish(runtime.TaskCreateEventTopic, &eventstypes.TaskCreate{
		ContainerID: r.ID, Bundle: r.Bundle, Rootfs: r.Rootfs,
		IO: &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
	})
	return &taskAPI.CreateTaskResponse{}, nil
}

// mountHostRoot mounts containerd's rootfs mounts on the bundle's rootfs.
func (c *container) mountHostRoot(mounts []*types.Mount) error {
	rootfs := filepath.Join(c.bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o711); err != nil {
		return err
	}
	for _, m := range mounts {
		mm := mount.Mount{Type: m.Type, Source: m.Source, Options: m.Options}
		if err := mm.Mount(rootfs); err != nil {
			c.unmountHostRoot()
			return fmt.Errorf("mounting the root file system: %w", err)
		}
	}
	return nil
}

// unmountHostRoot undoes mountHostRoot.
func (c *container) unmountHostRoot() {
	_ = mount.UnmountAll(filepath.Join(c.bundle, "rootfs"), unix.MNT_DETACH)
}

// makeRootImage writes the ext4 image of the container's root file system
// into the pod directory dir and returns its path.
func (c *container) makeRootImage(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	img := filepath.Join(dir, c.id+rootImageSuffix)
	if err := makeRootImage(ctx, filepath.Join(c.bundle, "rootfs"), img); err != nil {
		return "", err
	}
	return img, nil
}

// mountRoot brings the root file system mounted on the host to the guest
// (a bind into the shared directory, or in block mode the drive the VM
// booted with) and mounts /proc, /dev and /sys in it in the guest.
func (c *container) mountRoot(ctx context.Context) error {
	root := c.guestRoot()
	script := fmt.Sprintf("set -e\nr=%q\n", root)
	if c.hasDrive {
		script += fmt.Sprintf("mkdir -p \"$r\"\nmount -t ext4 %s \"$r\"\n", rootDriveGuestDev)
	} else {
		bind := c.hostRoot()
		if err := os.Mkdir(bind, 0o711); err != nil {
			return err
		}
		if err := unix.Mount(filepath.Join(c.bundle, "rootfs"), bind, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			os.Remove(bind)
			return fmt.Errorf("binding the root file system: %w", err)
		}
	}
	script += `mkdir -p "$r/proc" "$r/dev" "$r/sys" "$r/tmp"
mount -t proc proc "$r/proc"
mount -o rbind /dev "$r/dev"
mount -t sysfs sysfs "$r/sys"
`
	if _, err := c.pod.run(ctx, "sh", "-c", script); err != nil {
		return err
	}
	return nil
}

// unmountRoot undoes mountRoot, in the guest and on the host. A block
// device's image stays until the pod's directory goes: the VM holds it.
func (c *container) unmountRoot(ctx context.Context) {
	if c.pod.client != nil {
		root := c.guestRoot()
		script := fmt.Sprintf(`r=%q; for m in sys dev proc; do umount -l "$r/$m"; done; true`, root)
		if c.hasDrive {
			script = fmt.Sprintf(`r=%q; for m in sys dev proc; do umount -l "$r/$m"; done; umount "$r" || umount -l "$r"; true`, root)
		}
		_, _ = c.pod.run(ctx, "sh", "-c", script)
	}
	if !c.hasDrive {
		bind := c.hostRoot()
		_ = unix.Unmount(bind, unix.MNT_DETACH)
		_ = os.Remove(bind)
	}
	c.unmountHostRoot()
}

// Start starts the container's process or an exec.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.start(ctx, s.onExit); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	pid, _, _, _ := p.state()
	if r.ExecID == "" {
		s.publish(runtime.TaskStartEventTopic, &eventstypes.TaskStart{ContainerID: c.id, Pid: uint32(pid)})
	} else {
		s.publish(runtime.TaskExecStartedEventTopic, &eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: r.ExecID, Pid: uint32(pid)})
	}
	return &taskAPI.StartResponse{Pid: uint32(pid)}, nil
}

// onExit publishes a process's exit; the init process's exit ends its
// execs (they ran in its PID namespace or at least its root).
func (s *service) onExit(p *process) {
	pid, _, status, at := p.state()
	id := p.execID
	if id == "" {
		id = p.ctr.id
	}
	s.publish(runtime.TaskExitEventTopic, &eventstypes.TaskExit{
		ContainerID: p.ctr.id, ID: id, Pid: uint32(pid), ExitStatus: status, ExitedAt: protobuf.ToTimestamp(at),
	})
}

// Delete removes an exited exec, or a container (its mounts; the VM and
// virtiofsd with the pod's last container).
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	pid, status, exit, at := p.state()
	if status == task.Status_RUNNING || status == task.Status_PAUSED {
		return nil, errdefs.ToGRPCf(errdefs.ErrFailedPrecondition, "process %s is running", r.ID)
	}
	if status == task.Status_CREATED {
		p.exited(128 + uint32(unix.SIGKILL))
		pid, _, exit, at = p.state()
	}
	s.mu.Lock()
	if r.ExecID != "" {
		delete(c.execs, r.ExecID)
		s.mu.Unlock()
		return &taskAPI.DeleteResponse{Pid: uint32(pid), ExitStatus: exit, ExitedAt: protobuf.ToTimestamp(at)}, nil
	}
	delete(s.containers, r.ID)
	last := len(s.containers) == 0
	s.mu.Unlock()
	c.unmountRoot(ctx)
	if last {
		s.mu.Lock()
		pd := s.pod
		s.pod = nil
		s.mu.Unlock()
		if pd != nil {
			pd.destroy(ctx)
		}
	}
	s.publish(runtime.TaskDeleteEventTopic, &eventstypes.TaskDelete{
		ContainerID: r.ID, Pid: uint32(pid), ExitStatus: exit, ExitedAt: protobuf.ToTimestamp(at),
	})
	return &taskAPI.DeleteResponse{Pid: uint32(pid), ExitStatus: exit, ExitedAt: protobuf.ToTimestamp(at)}, nil
}

// Exec adds an exec process to a container; Start runs it.
func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	c, _, err := s.get(r.ID, "")
	if err != nil {
		return nil, err
	}
	var proc ociProcess
	if r.Spec == nil || json.Unmarshal(r.Spec.GetValue(), &proc) != nil {
		return nil, errdefs.ToGRPCf(errdefs.ErrInvalidArgument, "exec %s: no valid process spec", r.ExecID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := c.execs[r.ExecID]; ok {
		return nil, errdefs.ToGRPCf(errdefs.ErrAlreadyExists, "exec %s", r.ExecID)
	}
	p := newProcess(c, r.ExecID, &proc, r.Terminal, r.Stdin, r.Stdout, r.Stderr)
	if err := p.openStdin(); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	c.execs[r.ExecID] = p
	s.publish(runtime.TaskExecAddedEventTopic, &eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return &emptypb.Empty{}, nil
}

// State reports a process's state.
func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	pid, status, exit, at := p.state()
	if status == task.Status_RUNNING && c.pod.paused() {
		status = task.Status_PAUSED
	}
	return &taskAPI.StateResponse{
		ID: r.ID, ExecID: r.ExecID, Bundle: c.bundle, Pid: uint32(pid), Status: status,
		Stdin: p.stdin, Stdout: p.stdout, Stderr: p.stderr, Terminal: p.terminal,
		ExitStatus: exit, ExitedAt: protobuf.ToTimestamp(at),
	}, nil
}

// Wait waits for a process to exit.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	_, _, exit, at := p.state()
	return &taskAPI.WaitResponse{ExitStatus: exit, ExitedAt: protobuf.ToTimestamp(at)}, nil
}

// Kill sends a signal to a process in the guest.
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	_, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.kill(ctx, r.Signal); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// Pids lists the container's processes that the shim started (guest pids).
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, _, err := s.get(r.ID, "")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	procs := []*process{c.init}
	for _, p := range c.execs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	var out []*task.ProcessInfo
	for _, p := range procs {
		if pid, status, _, _ := p.state(); pid > 0 && status != task.Status_STOPPED {
			out = append(out, &task.ProcessInfo{Pid: uint32(pid)})
		}
	}
	return &taskAPI.PidsResponse{Processes: out}, nil
}

// CloseIO closes a process's stdin.
func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		p.closeIO()
	}
	return &emptypb.Empty{}, nil
}

// ResizePty resizes a process's terminal.
func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	_, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case p.resize <- agentWindowSize(r.Height, r.Width):
	default: // a burst of resizes: the next one wins
	}
	return &emptypb.Empty{}, nil
}

// Pause pauses the pod's VM (QMP stop): every container of the pod stops.
func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	c, _, err := s.get(r.ID, "")
	if err != nil {
		return nil, err
	}
	if err := c.pod.m.Pause(ctx); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	s.publish(runtime.TaskPausedEventTopic, &eventstypes.TaskPaused{ContainerID: r.ID})
	return &emptypb.Empty{}, nil
}

// Resume resumes the pod's VM (QMP cont).
func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	c, _, err := s.get(r.ID, "")
	if err != nil {
		return nil, err
	}
	if err := c.pod.m.Resume(ctx); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	s.publish(runtime.TaskResumedEventTopic, &eventstypes.TaskResumed{ContainerID: r.ID})
	return &emptypb.Empty{}, nil
}

// Checkpoint is not supported.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, errdefs.ToGRPCf(errdefs.ErrNotImplemented, "checkpoint")
}

// Update is not supported: a VM's size is fixed at boot.
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	return nil, errdefs.ToGRPCf(errdefs.ErrNotImplemented, "update: a petty VM's size is fixed at boot")
}

// Connect reports the shim's and the task's pids.
func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid())}
	if _, p, err := s.get(r.ID, ""); err == nil {
		pid, _, _, _ := p.state()
		resp.TaskPid = uint32(pid)
	}
	return resp, nil
}

// Shutdown ends the shim once it has no containers left.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	n := len(s.containers)
	s.mu.Unlock()
	if n > 0 {
		return &emptypb.Empty{}, nil
	}
	s.shutdown()
	return &emptypb.Empty{}, nil
}
