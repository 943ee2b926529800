// Package qemu drives qemu-system-x86_64 for petty: it builds the command
// line of a microvm machine ([Spec.Args]), speaks QMP, QEMU's JSON control
// protocol, over a unix socket ([DialQMP]), and probes the host for what the
// QEMU backend and "petty doctor" need to know ([FindBinary], [Version],
// [KVMUsable], [VhostVsockAvailable]).
package qemu
