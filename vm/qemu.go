package vm

// newQEMUBackend returns the QEMU backend.
func newQEMUBackend(m *Machine) backend {
	return &unsupportedBackend{vmm: QEMU}
}
