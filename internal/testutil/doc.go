// Package testutil holds helpers for petty's tests: building executables once
// per test binary (the fake firecracker, the agent, the CLI), short temporary
// directories for unix sockets, and leak checks for child processes and file
// descriptors.
package testutil
