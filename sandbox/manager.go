package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/internal/fsutil"
	"github.com/pettyvm/petty/vm"
)

// Manager creates, finds and destroys sandboxes within its limits. Its
// methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	hostMiB int
	log     *slog.Logger

	// life is cancelled by Close: it aborts the boots under way.
	life context.Context
	kill context.CancelFunc

	mu        sync.Mutex
	closed    bool
	sandboxes map[string]*Sandbox
	pending   int // sandboxes being created
	pendMiB   int // their memory
	// pools are the warm pools by image and size; poolMiB is the memory
	// of their VMs, ready or starting (see pool.go).
	pools   map[poolKey]*pool
	poolMiB int
	filler  filler
	// templates are the template snapshots by key (see template.go).
	templates templates
	creating  sync.WaitGroup
	// destroying counts the destructions under way outside Close (Destroy,
	// expiry), which Close waits for.
	destroying sync.WaitGroup
}

// NewManager returns a Manager for cfg.
func NewManager(cfg Config) (*Manager, error) {
	cfg = cfg.withDefaults()
	if cfg.Images == nil {
		return nil, &InvalidError{Field: "Config.Images", Problem: "no image resolver"}
	}
	host := cfg.HostMemoryMiB
	if host <= 0 {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return nil, fmt.Errorf("sandbox: reading the host's memory: %w", err)
		}
		host = int(uint64(si.Totalram) * uint64(si.Unit) >> 20)
	}
	life, kill := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, hostMiB: host, log: cfg.Logger, sandboxes: map[string]*Sandbox{}, life: life, kill: kill}
	if err := m.startPools(); err != nil {
		kill()
		return nil, err
	}
	return m, nil
}

// memoryLimit is the most MiB the sandboxes may hold together.
func (m *Manager) memoryLimit() int { return int(float64(m.hostMiB) * m.cfg.MemoryShare) }

// admit reserves room for a sandbox of mem MiB, or says why not. Idle
// pooled VMs are memory in use, but a sandbox asked for outranks them: they
// are evicted to make room.
func (m *Manager) admit(mem int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	count := len(m.sandboxes) + m.pending
	if count+1 > m.cfg.MaxSandboxes {
		return &LimitError{Resource: "sandboxes", Requested: 1, InUse: count, Limit: m.cfg.MaxSandboxes}
	}
	limit := m.memoryLimit()
	for m.memoryInUse()+mem > limit && m.evictLocked() {
	}
	if inUse := m.memoryInUse(); inUse+mem > limit {
		return &LimitError{Resource: "memory", Requested: mem, InUse: inUse, Limit: limit, HostMiB: m.hostMiB, Share: m.cfg.MemoryShare}
	}
	m.pending++
	m.pendMiB += mem
	m.creating.Add(1)
	return nil
}

// memoryInUse is the memory of the live sandboxes, of those being created
// and of the pool's VMs (ready or starting). Callers hold m.mu.
func (m *Manager) memoryInUse() int {
	inUse := m.pendMiB + m.poolMiB
	for _, s := range m.sandboxes {
		inUse += s.memoryMiB
	}
	return inUse
}

// Create returns a sandbox whose agent answers: one from the warm pool
// when the image and size have one ready (an acquire: no VM starts on the
// call path), else a VM restored from the image's template snapshot
// (Config.Snapshots), else a cold boot. ctx bounds the creation only; the
// sandbox lives until its timeout, Destroy or Close.
func (m *Manager) Create(ctx context.Context, opts Options) (_ *Sandbox, retErr error) {
	if f := m.cfg.OnCreate; f != nil {
		began := time.Now()
		defer func() { f(time.Since(began), retErr) }()
	}
	cfg, err := m.sized(opts.MemoryMiB, opts.VCPUs)
	if err != nil {
		return nil, err
	}
	switch {
	case opts.Timeout < 0:
		return nil, &InvalidError{Field: "timeout", Problem: "negative"}
	case m.cfg.MaxTimeout > 0 && opts.Timeout > m.cfg.MaxTimeout:
		return nil, &InvalidError{Field: "timeout", Problem: fmt.Sprintf("%v is over the maximum of %v", opts.Timeout, m.cfg.MaxTimeout)}
	}
	for _, kv := range opts.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, &InvalidError{Field: "env", Problem: fmt.Sprintf("%q is not KEY=value", kv)}
		}
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = m.cfg.DefaultTimeout
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}

	progress("resolving image")
	img, err := m.cfg.Images(ctx, opts.Image)
	if err != nil {
		return nil, fmt.Errorf("sandbox: image %q: %w", opts.Image, err)
	}
	began := time.Now()
	var inst *instance
	// An image whose files cannot be identified (a missing file, say) gets
	// neither a pooled VM nor a template: the cold boot says what is wrong.
	ident, err := identify(img, cfg)
	if err == nil {
		inst, err = m.acquire(ctx, poolKey{image: opts.Image, memoryMiB: cfg.MemoryMiB, vcpus: cfg.VCPUs}, ident)
		if err != nil {
			return nil, err
		}
	}
	if inst != nil {
		progress("acquired from the pool")
	} else {
		if err := m.admit(cfg.MemoryMiB); err != nil {
			return nil, err
		}
		inst, err = m.make(ctx, opts.Image, img, ident, cfg, progress)
		if err != nil {
			m.unreserve(cfg.MemoryMiB)
			return nil, err
		}
	}
	s := newSandbox(m, inst.machine, inst.client, opts, cfg, inst.workDir, timeout)
	m.mu.Lock()
	m.pending--
	m.pendMiB -= cfg.MemoryMiB
	if m.closed {
		m.mu.Unlock()
		m.discard(ctx, inst)
		m.creating.Done()
		return nil, ErrClosed
	}
	m.sandboxes[s.id] = s
	s.armTimer()
	m.mu.Unlock()
	m.creating.Done()
	progress("ready")
	m.log.Info("sandbox created", "id", s.id, "image", opts.Image, "memory_mib", cfg.MemoryMiB,
		"vcpus", cfg.VCPUs, "from", inst.origin, "took", time.Since(began).Round(time.Millisecond), "timeout", timeout)
	return s, nil
}

// sized returns the Config's VM template sized by memMiB and vcpus (zero:
// the template's, else vm's defaults), or why not.
func (m *Manager) sized(memMiB, vcpus int) (vm.Config, error) {
	cfg := m.cfg.VM
	if memMiB != 0 {
		cfg.MemoryMiB = memMiB
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = vm.DefaultMemoryMiB
	}
	if vcpus != 0 {
		cfg.VCPUs = vcpus
	}
	if cfg.VCPUs == 0 {
		cfg.VCPUs = vm.DefaultVCPUs
	}
	switch {
	case cfg.MemoryMiB < vm.MinMemoryMiB:
		return cfg, &InvalidError{Field: "memory_mib", Problem: fmt.Sprintf("%d MiB is below the minimum of %d MiB", cfg.MemoryMiB, vm.MinMemoryMiB)}
	case cfg.VCPUs < 1 || cfg.VCPUs > vm.MaxVCPUs:
		return cfg, &InvalidError{Field: "vcpu_count", Problem: fmt.Sprintf("%d is outside 1..%d", cfg.VCPUs, vm.MaxVCPUs)}
	}
	return cfg, nil
}

// unreserve gives back what admit reserved for a creation that failed.
func (m *Manager) unreserve(mem int) {
	m.mu.Lock()
	m.pending--
	m.pendMiB -= mem
	m.mu.Unlock()
	m.creating.Done()
	m.wakeFiller()
}

// make starts a VM of img sized as cfg and waits for its agent: restored
// from the template snapshot when Config.Snapshots allows (making the
// template first if need be), else, or when that fails, booted cold (the
// reason is logged). ctx bounds the call; Close aborts it.
func (m *Manager) make(ctx context.Context, name string, img Image, ident identity, cfg vm.Config, progress func(string)) (*instance, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.life, cancel)() // Close aborts the boot
	if m.cfg.Snapshots && ident != "" {
		inst, err := m.restore(ctx, name, img, ident, cfg, progress)
		if err == nil {
			return inst, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sandbox: restoring: %w", err)
		}
		m.log.Warn("booting cold: no snapshot to restore", "image", name, "reason", err)
	}
	return m.coldBoot(ctx, img, cfg, progress)
}

// coldBoot boots a VM of img sized as cfg and waits for its agent.
func (m *Manager) coldBoot(ctx context.Context, img Image, cfg vm.Config, progress func(string)) (*instance, error) {
	cfg.Kernel, cfg.Initrd, cfg.RootDrive = img.Kernel, img.Initrd, vm.Drive{}
	var workDir string
	var err error
	if img.Base != "" {
		progress("creating the writable layer")
		if workDir, err = os.MkdirTemp(m.cfg.WorkDir, "petty-sandbox-"); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		scratch, err := image.NewScratchDisk(ctx, workDir, img.ScratchBytes)
		if err != nil {
			_ = os.RemoveAll(workDir)
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		cfg.RootDrive = vm.Drive{Path: img.Base, ReadOnly: true}
		cfg.Drives = append([]vm.Drive{{ID: image.ScratchDriveID, Path: scratch}}, cfg.Drives...)
	} else if img.RootFS != "" {
		progress("copying root file system")
		if workDir, err = os.MkdirTemp(m.cfg.WorkDir, "petty-sandbox-"); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		disk := filepath.Join(workDir, "rootfs.img")
		if err := fsutil.CopyNew(disk, img.RootFS, 0o600); err != nil {
			_ = os.RemoveAll(workDir)
			return nil, fmt.Errorf("sandbox: copying the root file system: %w", err)
		}
		cfg.RootDrive = vm.Drive{Path: disk}
	}
	machine, err := vm.New(cfg)
	if err != nil {
		if workDir != "" {
			_ = os.RemoveAll(workDir)
		}
		return nil, &InvalidError{Field: "vm config", Problem: err.Error()}
	}
	inst := &instance{machine: machine, workDir: workDir, memoryMiB: cfg.MemoryMiB, origin: "cold boot"}
	progress("booting VM")
	bctx, cancel := context.WithTimeout(ctx, m.cfg.BootTimeout)
	defer cancel()
	if err := machine.Start(bctx); err != nil {
		m.discard(ctx, inst)
		return nil, fmt.Errorf("sandbox: booting: %w", err)
	}
	progress("waiting for the guest agent")
	if inst.client, err = machine.Agent(bctx); err != nil {
		tail := machine.ConsoleTail()
		m.discard(ctx, inst)
		return nil, fmt.Errorf("sandbox: the guest agent did not answer: %w (console tail: %q)", err, lastBytes(tail, 512))
	}
	return inst, nil
}

// discard destroys inst, logging what fails. ctx's values (not its end)
// carry over.
func (m *Manager) discard(ctx context.Context, inst *instance) {
	if err := inst.destroy(ctx, m.cfg.StopTimeout); err != nil {
		m.log.Warn("discarding a VM", "id", inst.machine.ID(), "err", err)
	}
}

// Get returns the live sandbox id.
func (m *Manager) Get(id string) (*Sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sandboxes[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return s, nil
}

// List returns the live sandboxes whose labels include every pair of
// labels (nil: all), oldest first.
func (m *Manager) List(labels map[string]string) []*Sandbox {
	m.mu.Lock()
	var out []*Sandbox
	for _, s := range m.sandboxes {
		match := true
		for k, v := range labels {
			if got, ok := s.labels[k]; !ok || got != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, s)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b *Sandbox) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return out
}

// Len returns the number of live sandboxes.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sandboxes)
}

// Destroy destroys the sandbox id: its processes, its VM and its files.
func (m *Manager) Destroy(ctx context.Context, id string) error {
	m.mu.Lock()
	s, ok := m.sandboxes[id]
	if ok {
		delete(m.sandboxes, id)
		m.destroying.Add(1)
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	defer m.destroying.Done()
	defer m.wakeFiller() // its memory is free for the pool
	return s.destroy(ctx)
}

// expire destroys s when its timer fires (unless it is already gone).
func (m *Manager) expire(s *Sandbox) {
	m.mu.Lock()
	cur, ok := m.sandboxes[s.id]
	if ok && cur == s {
		delete(m.sandboxes, s.id)
		m.destroying.Add(1)
	}
	m.mu.Unlock()
	if !ok || cur != s {
		return
	}
	defer m.destroying.Done()
	defer m.wakeFiller()
	m.log.Info("sandbox expired", "id", s.id)
	if err := s.destroy(context.Background()); err != nil {
		m.log.Warn("destroying an expired sandbox", "id", s.id, "err", err)
	}
}

// Close refuses new sandboxes, aborts the boots under way and destroys
// every sandbox and pooled VM. ctx bounds the removal of each VM's
// resources.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.kill()
	m.creating.Wait()
	m.mu.Lock()
	all := slices.Collect(maps.Values(m.sandboxes))
	clear(m.sandboxes)
	m.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Go(func() { errs[i] = s.destroy(ctx) })
	}
	wg.Wait()
	errs = append(errs, m.closePools(ctx)...)
	m.destroying.Wait()
	errs = append(errs, m.closeTemplates())
	return errors.Join(errs...)
}
