// Command containerd-shim-petty-v2 is containerd's runtime
// io.containerd.petty.v2: a shim v2 that runs containers in petty microVMs.
// One VM serves a pod (the containers sharing a CRI sandbox id, or a single
// container under plain ctr): the first container boots it, the others run
// in it, each chrooted in its root file system in new mount and PID
// namespaces. The root file systems that containerd's snapshotter prepares
// on the host reach the guest through virtio-fs, without a copy.
//
// It speaks the task API of containerd 1.6 and later (ttrpc
// containerd.task.v2.Task) and prints a plain socket address from "start",
// which every containerd since 1.6 understands. See the README's
// Kubernetes section for the containerd configuration and RuntimeClass.
package main

import (
	"github.com/containerd/containerd/runtime/v2/shim"
)

// RuntimeName is the runtime's name in containerd.
const RuntimeName = "io.containerd.petty.v2"

func main() {
	shim.Run(RuntimeName, newService)
}
