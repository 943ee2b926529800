package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/vm"
)

// poolKey names a warm pool: an image and a VM size. A sandbox asked for
// with the same image and size is handed out from it.
type poolKey struct {
	image     string
	memoryMiB int
	vcpus     int
}

// instance is a VM whose agent answers that is not (yet, or any more) a
// Sandbox: a pooled VM, or one being made for Create.
type instance struct {
	machine   *vm.Machine
	client    *agent.Client
	workDir   string
	memoryMiB int
	// origin says how it was made ("cold boot", "restored") and, once
	// handed out, "pool".
	origin string
	// ident is the identity of the image it was made from: a pooled VM of
	// an image since changed is never handed out.
	ident identity
	// unwatch ends the pool's watch of its VMM (nil when not pooled).
	unwatch context.CancelFunc
}

// destroy closes the agent connection, kills the VMM and removes the VM's
// files, within stopTimeout past ctx's cancellation.
func (in *instance) destroy(ctx context.Context, stopTimeout time.Duration) error {
	if in.unwatch != nil {
		in.unwatch()
	}
	if in.client != nil {
		_ = in.client.Close()
	}
	var errs []error
	if err := in.machine.Kill(); err != nil {
		errs = append(errs, fmt.Errorf("killing the VMM: %w", err))
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := in.machine.Destroy(dctx); err != nil {
		errs = append(errs, fmt.Errorf("destroying the VM: %w", err))
	}
	if in.workDir != "" {
		if err := os.RemoveAll(in.workDir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox: VM %s: %w", in.machine.ID(), errors.Join(errs...))
	}
	return nil
}

// pool is one warm pool: VMs ready to be handed out, and how many are
// being made. The Manager's mu guards it.
type pool struct {
	key      poolKey
	want     int
	ready    []*instance // oldest first
	starting int
	// failures counts the fills that failed in a row; the next waits
	// until retryAt.
	failures int
	retryAt  time.Time
}

// healthTimeout bounds the Ping of a pooled VM before hand-out.
const healthTimeout = 5 * time.Second

// acquire hands out a pooled VM of key made from the image ident names:
// one whose VMM runs and whose agent answers a Ping. Dead or stale ones met
// on the way are destroyed (the pool refills). It returns nil when the pool
// has none ready; with one it has reserved the sandbox's room as admit does.
func (m *Manager) acquire(ctx context.Context, key poolKey, ident identity) (*instance, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		p := m.pools[key]
		if p == nil || len(p.ready) == 0 {
			m.mu.Unlock()
			return nil, nil
		}
		if count := len(m.sandboxes) + m.pending; count+1 > m.cfg.MaxSandboxes {
			m.mu.Unlock()
			return nil, &LimitError{Resource: "sandboxes", Requested: 1, InUse: count, Limit: m.cfg.MaxSandboxes}
		}
		inst := p.ready[0]
		p.ready = p.ready[1:]
		m.poolMiB -= inst.memoryMiB
		m.pending++
		m.pendMiB += inst.memoryMiB
		m.creating.Add(1)
		m.poolChangedLocked()
		m.mu.Unlock()
		// The refill starts once the hand-out is decided: a VM starting
		// now would compete with the health check for the CPU.
		inst.unwatch()
		inst.unwatch = nil

		why := ""
		if inst.ident != ident {
			why = "its image changed"
		} else if st := inst.machine.State(); st != vm.Running {
			why = "its VMM is " + st.String()
		} else {
			pctx, cancel := context.WithTimeout(ctx, healthTimeout)
			_, err := inst.client.Ping(pctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					m.wakeFiller()
					m.discardAsync(inst)
					m.unreserve(inst.memoryMiB)
					return nil, fmt.Errorf("sandbox: checking a pooled VM: %w", ctx.Err())
				}
				why = "its agent did not answer: " + err.Error()
			}
		}
		m.wakeFiller()
		if why == "" {
			inst.origin = "pool"
			return inst, nil
		}
		m.log.Warn("replacing a pooled VM", "id", inst.machine.ID(), "image", key.image, "reason", why)
		m.discardAsync(inst)
		m.unreserve(inst.memoryMiB)
	}
}

// discardAsync destroys inst in the background; Close waits for it.
func (m *Manager) discardAsync(inst *instance) {
	m.destroying.Add(1)
	go func() {
		defer m.destroying.Done()
		m.discard(context.Background(), inst)
	}()
}

// evictLocked destroys the oldest idle pooled VM to make room, reporting
// whether there was one. Callers hold m.mu.
func (m *Manager) evictLocked() bool {
	var victim *pool
	for _, p := range m.pools {
		if len(p.ready) > 0 && (victim == nil || len(p.ready) > len(victim.ready)) {
			victim = p
		}
	}
	if victim == nil {
		return false
	}
	inst := victim.ready[0]
	victim.ready = victim.ready[1:]
	m.poolMiB -= inst.memoryMiB
	m.poolChangedLocked()
	m.log.Info("evicting a pooled VM to make room", "id", inst.machine.ID(), "image", victim.key.image)
	m.discardAsync(inst)
	return true
}

// watch replaces inst if its VMM exits while it waits in p.
func (m *Manager) watch(ctx context.Context, p *pool, inst *instance) {
	defer m.filler.wg.Done()
	err := inst.machine.Wait(ctx)
	if ctx.Err() != nil {
		return // handed out, evicted or destroyed
	}
	m.mu.Lock()
	i := indexOf(p.ready, inst)
	if i < 0 {
		m.mu.Unlock()
		return // just taken: acquire's check will see it dead
	}
	p.ready = append(p.ready[:i], p.ready[i+1:]...)
	m.poolMiB -= inst.memoryMiB
	m.poolChangedLocked()
	m.mu.Unlock()
	m.log.Warn("a pooled VM died; replacing it", "id", inst.machine.ID(), "image", p.key.image, "err", err)
	m.discard(context.Background(), inst)
	m.wakeFiller()
}

// indexOf returns the index of inst in list, or -1.
func indexOf(list []*instance, inst *instance) int {
	for i, x := range list {
		if x == inst {
			return i
		}
	}
	return -1
}

// Pooled returns the number of pooled VMs ready to be handed out.
func (m *Manager) Pooled() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, p := range m.pools {
		n += len(p.ready)
	}
	return n
}

// WaitPool waits until every warm pool holds its Config.Pool ready VMs,
// or ctx ends. It returns ErrClosed once the Manager is closed.
func (m *Manager) WaitPool(ctx context.Context) error {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		full := true
		for _, p := range m.pools {
			if len(p.ready) < p.want {
				full = false
			}
		}
		changed := m.filler.changed
		m.mu.Unlock()
		if full {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("sandbox: waiting for the pool: %w", ctx.Err())
		}
	}
}

// poolChangedLocked tells WaitPool's callers that a pool changed. Callers
// hold m.mu.
func (m *Manager) poolChangedLocked() {
	close(m.filler.changed)
	m.filler.changed = make(chan struct{})
}
