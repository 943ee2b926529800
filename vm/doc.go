// Package vm boots and manages microVMs.
//
// A [Config] is plain data whose zero values mean documented defaults. [New]
// validates it (reporting every bad field at once) and allocates an ID, with
// no side effects; [Machine.Start] creates the VM's private run directory
// <Config.RunDir>/<ID> (0700, under a root verified to be the user's own),
// spawns the VMM and boots the guest. The VMM dies with the process that
// started it, whatever kills that process. The context given to Start bounds the boot only, never the
// VM's lifetime: the VM runs until [Machine.Shutdown], [Machine.Kill] or the
// guest stops it. [Machine.Destroy] stops the VM if needed and removes every
// resource petty created for it.
//
// Two VMMs sit behind one small internal interface: Firecracker (the default,
// driven through package firecracker) and QEMU.
package vm
