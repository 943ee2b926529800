package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestServeMetrics(t *testing.T) {
	n := 2
	m := newServeMetrics(func() int { return n }, func() int { return 3 })
	m.created(time.Second, nil)
	m.created(time.Second, errors.New("boom"))
	m.exec(3 * time.Millisecond)
	m.exec(700 * time.Millisecond)
	m.exec(time.Hour)
	var b strings.Builder
	m.write(&b)
	for _, want := range []string{
		"petty_sandboxes 2\n",
		"petty_pooled_sandboxes 3\n",
		"petty_sandbox_creates_total 2\n",
		"petty_sandbox_create_failures_total 1\n",
		`petty_exec_duration_seconds_bucket{le="0.005"} 1` + "\n",
		`petty_exec_duration_seconds_bucket{le="0.5"} 1` + "\n",
		`petty_exec_duration_seconds_bucket{le="1"} 2` + "\n",
		`petty_exec_duration_seconds_bucket{le="300"} 2` + "\n",
		`petty_exec_duration_seconds_bucket{le="+Inf"} 3` + "\n",
		"petty_exec_duration_seconds_count 3\n",
		"# TYPE petty_exec_duration_seconds histogram\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}
