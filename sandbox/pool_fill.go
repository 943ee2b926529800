package sandbox

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultPoolFillers is how many pooled VMs are made at once when
// Config.PoolFillers is zero.
const DefaultPoolFillers = 2

// Backoff of a pool whose fills fail.
const (
	poolRetryMin = time.Second
	poolRetryMax = time.Minute
)

// filler keeps the warm pools full: one loop, woken by every event that
// may let it start a fill (an acquire, a fill's end, memory freed, a VM's
// death), starting at most Config.PoolFillers fills at once.
type filler struct {
	wake    chan struct{} // buffered 1
	running int           // fills under way (guarded by Manager.mu)
	// changed is closed and replaced at each change of a pool (guarded by
	// Manager.mu): WaitPool waits on it.
	changed chan struct{}
	// wg counts the loop, the fills and the watches of pooled VMs.
	wg sync.WaitGroup
}

// startPools makes the warm pools of cfg and starts the filler.
func (m *Manager) startPools() error {
	m.filler.wake = make(chan struct{}, 1)
	m.filler.changed = make(chan struct{})
	m.pools = map[poolKey]*pool{}
	if m.cfg.Pool <= 0 {
		return nil
	}
	cfg, err := m.sized(0, 0)
	if err != nil {
		return err
	}
	images := m.cfg.PoolImages
	if len(images) == 0 {
		images = []string{""}
	}
	for _, name := range images {
		key := poolKey{image: name, memoryMiB: cfg.MemoryMiB, vcpus: cfg.VCPUs}
		m.pools[key] = &pool{key: key, want: m.cfg.Pool}
	}
	m.filler.wg.Add(1)
	go m.fillLoop()
	m.wakeFiller()
	return nil
}

// wakeFiller tells the filler to look at the pools again.
func (m *Manager) wakeFiller() {
	select {
	case m.filler.wake <- struct{}{}:
	default:
	}
}

// fillLoop starts fills until Close.
func (m *Manager) fillLoop() {
	defer m.filler.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if next := m.startFills(); !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-m.filler.wake:
		case <-timer.C:
		case <-m.life.Done():
			return
		}
	}
}

// startFills starts the fills that the pools lack, within the fillers'
// bound and the memory limit (the pools never evict anything), and returns
// when a pool backing off after failures may try again (zero: none).
func (m *Manager) startFills() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	now := time.Now()
	for _, p := range m.pools {
		for !m.closed && len(p.ready)+p.starting < p.want && m.filler.running < m.cfg.PoolFillers {
			if now.Before(p.retryAt) {
				if next.IsZero() || p.retryAt.Before(next) {
					next = p.retryAt
				}
				break
			}
			if m.memoryInUse()+p.key.memoryMiB > m.memoryLimit() {
				break // woken again when memory is freed
			}
			p.starting++
			m.filler.running++
			m.poolMiB += p.key.memoryMiB
			m.filler.wg.Add(1)
			go m.fill(p)
		}
	}
	return next
}

// fill makes one VM for p.
func (m *Manager) fill(p *pool) {
	defer m.filler.wg.Done()
	defer m.wakeFiller()
	inst, err := m.makeFor(p.key)
	m.mu.Lock()
	p.starting--
	m.filler.running--
	if err != nil || m.closed {
		m.poolMiB -= p.key.memoryMiB
		if err != nil && !m.closed {
			p.failures++
			p.retryAt = time.Now().Add(min(poolRetryMax, poolRetryMin<<min(p.failures-1, 6)))
		}
		m.poolChangedLocked()
		m.mu.Unlock()
		if err != nil && !errors.Is(err, context.Canceled) {
			m.log.Warn("filling the pool", "image", p.key.image, "failures", p.failures, "err", err)
		}
		if inst != nil {
			m.discard(context.Background(), inst)
		}
		return
	}
	p.failures = 0
	wctx, unwatch := context.WithCancel(context.Background())
	inst.unwatch = unwatch
	p.ready = append(p.ready, inst)
	m.filler.wg.Add(1)
	go m.watch(wctx, p, inst)
	m.poolChangedLocked()
	m.mu.Unlock()
	m.log.Debug("pooled a VM", "id", inst.machine.ID(), "image", p.key.image, "from", inst.origin)
}

// makeFor makes a VM for the pool key (Close aborts it).
func (m *Manager) makeFor(key poolKey) (*instance, error) {
	ctx, cancel := context.WithTimeout(m.life, 2*m.cfg.BootTimeout)
	defer cancel()
	img, err := m.cfg.Images(ctx, key.image)
	if err != nil {
		return nil, err
	}
	cfg, err := m.sized(key.memoryMiB, key.vcpus)
	if err != nil {
		return nil, err
	}
	ident, err := identify(img, cfg)
	if err != nil {
		return nil, err
	}
	inst, err := m.make(ctx, key.image, img, ident, cfg, func(string) {})
	if err != nil {
		return nil, err
	}
	inst.ident = ident
	return inst, nil
}

// closePools destroys the pooled VMs once Close has stopped the filler's
// new work, and waits for the filler, the fills and the watches.
func (m *Manager) closePools(ctx context.Context) []error {
	m.mu.Lock()
	var all []*instance
	for _, p := range m.pools {
		for _, inst := range p.ready {
			m.poolMiB -= inst.memoryMiB
		}
		all = append(all, p.ready...)
		p.ready = nil
	}
	m.poolChangedLocked()
	m.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, inst := range all {
		wg.Go(func() { errs[i] = inst.destroy(ctx, m.cfg.StopTimeout) })
	}
	wg.Wait()
	m.filler.wg.Wait()
	return errs
}
