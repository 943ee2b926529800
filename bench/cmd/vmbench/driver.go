package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// driver starts and stops VMs with one library.
type driver interface {
	name() string
	// create creates and boots VM n; it returns once InstanceStart has
	// been acknowledged.
	create(ctx context.Context, n int) (vmHandle, error)
}

// vmHandle is one running VM.
type vmHandle interface {
	// shutdown asks the guest to stop and returns once the VMM is reaped.
	shutdown(ctx context.Context) error
	// cleanup removes what the VM left behind; it is not measured.
	cleanup() error
}

// sample is one VM's timings.
type sample struct{ create, shutdown time.Duration }

// results are the samples of one driver in one mode.
type results struct{ create, shutdown []time.Duration }

func (r *results) add(s sample) {
	r.create = append(r.create, s.create)
	r.shutdown = append(r.shutdown, s.shutdown)
}

// measure creates and shuts down VM n with d.
func measure(ctx context.Context, d driver, n int) (sample, error) {
	var s sample
	t0 := time.Now()
	h, err := d.create(ctx, n)
	s.create = time.Since(t0)
	if err != nil {
		return s, fmt.Errorf("%s: create VM %d: %w", d.name(), n, err)
	}
	t1 := time.Now()
	err = h.shutdown(ctx)
	s.shutdown = time.Since(t1)
	if err != nil {
		_ = h.cleanup()
		return s, fmt.Errorf("%s: shutdown VM %d: %w", d.name(), n, err)
	}
	if err := h.cleanup(); err != nil {
		return s, fmt.Errorf("%s: cleanup VM %d: %w", d.name(), n, err)
	}
	return s, nil
}

// sequential runs runs VMs one after another with each driver, alternating
// the drivers' order every iteration so that drift hits both alike.
func sequential(ctx context.Context, drivers []driver, runs int) (map[string]results, error) {
	out := map[string]results{}
	for i := range runs {
		for j := range drivers {
			d := drivers[(i+j)%len(drivers)]
			s, err := measure(ctx, d, 1+i)
			if err != nil {
				return nil, err
			}
			r := out[d.name()]
			r.add(s)
			out[d.name()] = r
		}
	}
	return out, nil
}

// concurrent runs runs VMs with d, conc of them in flight at once; each
// worker creates a VM and shuts it down, then takes the next.
func concurrent(ctx context.Context, d driver, runs, conc int) (results, error) {
	jobs := make(chan int)
	var (
		mu   sync.Mutex
		out  results
		errs []error
		wg   sync.WaitGroup
	)
	for range min(conc, runs) {
		wg.Go(func() {
			for n := range jobs {
				s, err := measure(ctx, d, 10000+n)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					out.add(s)
				}
				mu.Unlock()
			}
		})
	}
	for n := range runs {
		jobs <- n
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		return out, fmt.Errorf("%d of %d VMs failed; first: %w", len(errs), runs, errs[0])
	}
	return out, nil
}
