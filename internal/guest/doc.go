// Package guest is petty-agent, the guest side of petty's agent protocol
// (package agent/wire): the Server with its methods (Exec, files, Ping,
// Shutdown, Refresh), the serial transport's agent side, and what the agent does as
// a guest's PID 1: mounting the essential file systems, reaping orphans,
// powering off, setting the host name, and, as the initramfs's /init,
// loading kernel modules, naming virtio-serial ports and switching into an
// image's overlay root (petty.root= read-only below petty.scratch=). Exec
// runs commands as a user of the root's /etc/passwd with a clean
// environment.
//
// Only cmd/petty-agent (and tests) link it; the host library (packages vm
// and agent) never does.
package guest
