package main

// defaultDiskSize is --disk-size's default: the size of the VM's writable
// layer above its image (see image.NewScratchDisk).
const defaultDiskSize = "2GiB"
