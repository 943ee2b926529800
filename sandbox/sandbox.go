package sandbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/vm"
)

// Sandbox is one VM with its agent connection. Its methods are safe for
// concurrent use; calls run concurrently.
type Sandbox struct {
	mgr       *Manager
	id        string
	image     string
	created   time.Time
	labels    map[string]string
	memoryMiB int
	vcpus     int
	env       []string
	machine   *vm.Machine
	client    *agent.Client
	workDir   string

	// life is cancelled when the sandbox is destroyed: it bounds the
	// background processes.
	life     context.Context
	cancel   context.CancelFunc
	procs    processTable
	destroyO sync.Once
	destroyE error
	done     chan struct{}

	mu       sync.Mutex
	deadline time.Time
	timer    *time.Timer
}

func newSandbox(m *Manager, machine *vm.Machine, c *agent.Client, opts Options, cfg vm.Config, workDir string, timeout time.Duration) *Sandbox {
	life, cancel := context.WithCancel(context.Background())
	now := time.Now()
	return &Sandbox{
		mgr: m, id: machine.ID(), image: opts.Image, created: now,
		labels: maps.Clone(opts.Labels), memoryMiB: cfg.MemoryMiB, vcpus: cfg.VCPUs,
		env: append([]string(nil), opts.Env...), machine: machine, client: c, workDir: workDir,
		life: life, cancel: cancel, done: make(chan struct{}),
		procs:    processTable{byPID: map[int]*Process{}},
		deadline: now.Add(timeout),
	}
}

// Info describes a sandbox.
type Info struct {
	ID        string
	Image     string
	State     string // "running", or "destroyed"
	CreatedAt time.Time
	ExpiresAt time.Time
	MemoryMiB int
	VCPUs     int
	Labels    map[string]string
	// VMMPID is the VMM's process id on the host (0 once stopped).
	VMMPID int
}

// ID returns the sandbox's id.
func (s *Sandbox) ID() string { return s.id }

// Info describes the sandbox.
func (s *Sandbox) Info() Info {
	s.mu.Lock()
	deadline := s.deadline
	s.mu.Unlock()
	state := "running"
	select {
	case <-s.done:
		state = "destroyed"
	default:
	}
	return Info{ID: s.id, Image: s.image, State: state, CreatedAt: s.created, ExpiresAt: deadline,
		MemoryMiB: s.memoryMiB, VCPUs: s.vcpus, Labels: maps.Clone(s.labels), VMMPID: s.machine.PID()}
}

// Done is closed once the sandbox is destroyed.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// armTimer (re)starts the expiry timer for s.deadline. Callers hold s.mu
// or own s exclusively.
func (s *Sandbox) armTimer() {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(time.Until(s.deadline), func() { s.mgr.expire(s) })
}

// SetTimeout makes the sandbox expire d from now.
func (s *Sandbox) SetTimeout(d time.Duration) error {
	if d <= 0 {
		return &InvalidError{Field: "timeout", Problem: "must be positive"}
	}
	if max := s.mgr.cfg.MaxTimeout; max > 0 && d > max {
		return &InvalidError{Field: "timeout", Problem: fmt.Sprintf("%v is over the maximum of %v", d, max)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.alive(); err != nil {
		return err
	}
	s.deadline = time.Now().Add(d)
	s.armTimer()
	return nil
}

// Extend pushes the sandbox's expiry d further.
func (s *Sandbox) Extend(d time.Duration) error {
	s.mu.Lock()
	left := time.Until(s.deadline)
	s.mu.Unlock()
	return s.SetTimeout(left + d)
}

// alive returns ErrNotFound once the sandbox is destroyed.
func (s *Sandbox) alive() error {
	select {
	case <-s.done:
		return fmt.Errorf("%w: %q was destroyed", ErrNotFound, s.id)
	default:
		return nil
	}
}

// destroy kills the background processes and destroys the VM and its
// files. It runs once; later calls return the first result.
func (s *Sandbox) destroy(ctx context.Context) error {
	s.destroyO.Do(func() {
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		s.mu.Unlock()
		close(s.done)
		// Cancelling the background processes' calls asks the agent to
		// kill their process groups; killing the VMM below ends every
		// guest process anyway.
		s.cancel()
		_ = s.client.Close()
		// A sandbox is throwaway (its disk is a private copy): no graceful
		// stop, the VMM is killed at once.
		var errs []error
		if err := s.machine.Kill(); err != nil {
			errs = append(errs, fmt.Errorf("sandbox %s: killing the VMM: %w", s.id, err))
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.mgr.cfg.StopTimeout)
		defer cancel()
		if err := s.machine.Destroy(dctx); err != nil {
			errs = append(errs, fmt.Errorf("sandbox %s: destroying the VM: %w", s.id, err))
		}
		if s.workDir != "" {
			if err := os.RemoveAll(s.workDir); err != nil {
				errs = append(errs, fmt.Errorf("sandbox %s: %w", s.id, err))
			}
		}
		s.procs.wait()
		s.destroyE = errors.Join(errs...)
		s.mgr.log.Info("sandbox destroyed", "id", s.id)
	})
	return s.destroyE
}
