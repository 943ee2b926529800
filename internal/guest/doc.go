// Package guest is petty-agent, the guest side of petty's agent protocol
// (package agent/wire): the Server with its methods (Exec, files, Ping,
// Shutdown), the serial transport's agent side, and what the agent does as
// a guest's PID 1: mounting the essential file systems, reaping orphans,
// powering off, and, as the initramfs's /init, loading kernel modules and
// naming virtio-serial ports.
//
// Only cmd/petty-agent (and tests) link it; the host library (packages vm
// and agent) never does.
package guest
