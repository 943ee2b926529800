package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name     string
		failures int   // attempts that fail before success
		perm     error // returned permanently on the first attempt
		timeout  time.Duration
		stop     bool
		wantIs   []error
		wantN    int
	}{
		{name: "first try", wantN: 1},
		{name: "third try", failures: 2, wantN: 3},
		{name: "permanent", perm: errBoom, wantIs: []error{errBoom}, wantN: 1},
		{name: "deadline keeps cause", failures: 1 << 30, timeout: 20 * time.Millisecond, wantIs: []error{context.DeadlineExceeded, errBoom}},
		{name: "stop", failures: 1 << 30, stop: true, wantIs: []error{ErrStopped, errBoom}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			stop := make(chan struct{})
			if tt.stop {
				close(stop)
			}
			n := 0
			err := Do(ctx, Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond, Stop: stop}, func(context.Context) error {
				n++
				if tt.perm != nil {
					return Permanent(tt.perm)
				}
				if n <= tt.failures {
					return errBoom
				}
				return nil
			})
			if len(tt.wantIs) == 0 && err != nil {
				t.Fatalf("Do = %v, want nil", err)
			}
			for _, want := range tt.wantIs {
				if !errors.Is(err, want) {
					t.Errorf("Do = %v, want errors.Is %v", err, want)
				}
			}
			if tt.wantN > 0 && n != tt.wantN {
				t.Errorf("attempts = %d, want %d", n, tt.wantN)
			}
		})
	}
}
