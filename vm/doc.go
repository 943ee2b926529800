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
//
// # Snapshots and clones
//
// [Machine.Snapshot](ctx, dir) pauses a running VM, writes its device state,
// its memory and a copy of every writable drive into dir, resumes it, and
// writes the [Manifest] (ManifestName: format version, backend, the
// configuration a restore needs, every file with its size) last.
// [Restore](ctx, dir, [RestoreOptions]) starts a new, running Machine from
// dir and returns once its agent answered and took the clone's identity
// (agent.Client.Refresh: host entropy into the guest RNG and a CRNG reseed,
// the host's wall clock, its own host name). Any number of clones may be
// restored from one dir at once; none writes into it: a clone's writable
// drives are sparse copies (reflinks where the file system shares blocks)
// in its own run directory, and its memory is the snapshot's memory file
// mapped privately. A snapshot of another backend, a newer format or a
// missing or truncated file is a [*SnapshotError] (errors.Is(err,
// [ErrSnapshot]) and its reason: [ErrSnapshotBackend], [ErrSnapshotFormat],
// [ErrSnapshotIncomplete], [ErrSnapshotUnsupported]).
//
// Under QEMU every cold-booted VM keeps its RAM in a file of its run
// directory (memory-backend-file, share=on; keep the run root on tmpfs, as
// the default /run/petty is). Snapshot saves the device state with QEMU's
// migration and the x-ignore-shared capability (a few hundred KiB) and
// copies the memory file sparsely; a restore starts QEMU with -incoming
// defer and the snapshot's memory file as RAM with share=off
// (copy-on-write): it reads no memory up front, and clones share the pages
// they did not write. A Machine restored from a QEMU snapshot cannot be
// snapshotted itself. Under Firecracker, Snapshot is PATCH /vm Paused, PUT
// /snapshot/create (Full), PATCH /vm Resumed; a restore's first and only
// configuration call is PUT /snapshot/load with a File memory backend,
// resume_vm, vsock_override and network_overrides. Writable drives reach
// either VMM through a link in the run directory (drive-<ID>.img), so a
// drive whose file its owner unlinked after the boot is still copied.
package vm
