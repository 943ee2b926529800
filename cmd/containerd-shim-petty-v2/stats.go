package main

import (
	"bufio"
	"context"
	"strconv"
	"strings"

	statsv2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/protobuf"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/vm"
)

// Stats reports the guest's CPU time and memory use as cgroup v2 metrics:
// the VM is the container's (or pod's) resource boundary.
func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, _, err := s.get(r.ID, "")
	if err != nil {
		return nil, err
	}
	out, err := c.pod.run(ctx, "cat", "/proc/stat", "/proc/meminfo")
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	m := guestMetrics(out)
	a, err := protobuf.MarshalAnyToProto(m)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}

// guestMetrics parses /proc/stat's cpu line (USER_HZ ticks, 100 a second in
// Debian's kernel) and /proc/meminfo.
func guestMetrics(procs string) *statsv2.Metrics {
	m := &statsv2.Metrics{CPU: &statsv2.CPUStat{}, Memory: &statsv2.MemoryStat{}}
	var memTotal, memAvail uint64
	sc := bufio.NewScanner(strings.NewReader(procs))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "cpu":
			var user, system uint64
			for i, v := range f[1:] {
				n, _ := strconv.ParseUint(v, 10, 64)
				switch i {
				case 0, 1: // user, nice
					user += n
				case 2, 5, 6: // system, irq, softirq
					system += n
				}
			}
			const usecPerTick = 10000
			m.CPU.UserUsec, m.CPU.SystemUsec = user*usecPerTick, system*usecPerTick
			m.CPU.UsageUsec = m.CPU.UserUsec + m.CPU.SystemUsec
		case "MemTotal:":
			memTotal, _ = strconv.ParseUint(f[1], 10, 64)
		case "MemAvailable:":
			memAvail, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	m.Memory.UsageLimit = memTotal * 1024
	if memTotal >= memAvail {
		m.Memory.Usage = (memTotal - memAvail) * 1024
	}
	return m
}

// agentWindowSize is a terminal size for the agent.
func agentWindowSize(rows, cols uint32) agent.WindowSize {
	return agent.WindowSize{Rows: rows, Cols: cols}
}

// paused reports whether the pod's VM is paused.
func (p *pod) paused() bool { return p.m != nil && p.m.State() == vm.Paused }
