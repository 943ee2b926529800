// Command fakefirecracker is a strict stand-in for the Firecracker v1.16.1
// executable, used by petty's tests and benchmarks as a real process.
//
// It speaks Firecracker's HTTP API (HTTP/1.1, keep-alive, Content-Length
// framing) on the unix socket named by --api-sock and validates requests the
// way Firecracker does: unknown JSON fields, missing required fields and bad
// types are rejected; the id in the path must equal the id in the body; the
// kernel, initrd and drive files are opened when they are configured; a tap is
// accepted only if /sys/class/net/<name> exists; the vsock unix socket is bound
// when the device is configured; pre-boot-only calls fail after InstanceStart
// and post-boot-only calls fail before it. Every failure is a 400 response
// with a JSON body {"fault_message": "..."}. Endpoints of the Firecracker API
// that the fake does not implement (balloon, mmds, ...) also answer 400, with
// a fault message that says so. Snapshots (PUT /snapshot/create and
// /snapshot/load) follow Firecracker's rules; see snapshot.go.
//
// Like Firecracker it refuses to start when the API socket already exists,
// and it never removes the API socket nor the vsock socket when it exits.
//
// # The fake guest
//
// Host-initiated hybrid vsock connections ("CONNECT <port>\n") are forwarded
// to the unix socket GUEST_DIR/<port>, where GUEST_DIR is $FAKEFC_GUEST_DIR or,
// when that is unset, "fake-guest" next to the vsock uds_path (created with
// mode 0700 and removed on exit if the fake created it). If the guest socket
// cannot be reached the host connection is closed without an answer, as
// Firecracker does when the guest refuses; otherwise the fake answers
// "OK <hostport>\n" and copies bytes both ways, honouring half-closes. A
// connection made before the guest runs (or while it is paused) waits; at log
// level Debug the fake logs "vsock: a host connection waits for the guest to
// run" when one starts waiting.
//
// If $FAKEFC_GUEST_CMD is set, InstanceStart runs it with /bin/sh -c in its own
// process group, with FAKEFC_GUEST_DIR exported and its output going to the
// fake's stdout and stderr (the serial console). Pausing the VM stops the
// group (SIGSTOP), resuming continues it. When the guest command exits the
// fake prints a reboot line and exits 0, as Firecracker does when its guest
// reboots; when the fake exits it kills the whole group. The guest shell is
// started with Pdeathsig (SIGKILL) from a thread locked for the fake's
// lifetime, so a guest, such as a host-run petty-agent exec'd by the shell,
// dies with a fake that is SIGKILLed or crashes too.
//
// SendCtrlAltDel answers 204 and the fake exits 0 about 10ms later (the guest
// is booted with reboot=k). SIGTERM and SIGINT make it exit 0.
//
// # Fault switches
//
// Environment variables change the fake's behaviour for tests:
//
//	FAKEFC_SOCKET_DELAY=<duration>  wait this long before creating the API socket
//	FAKEFC_NO_SOCKET=1              never create the API socket; block until signalled
//	FAKEFC_CRASH_AT_START=1         at InstanceStart print a panic to stderr and exit 1 without answering
//	FAKEFC_FAIL=<substring>         answer 400 "injected failure" to requests whose path contains it;
//	                                with --config-file, fail the boot at the section standing for
//	                                such a path (/machine-config, /drives/<id>, ..., /actions)
//	FAKEFC_IGNORE_CTRLALTDEL=1      SendCtrlAltDel answers 204 but the fake keeps running (the guest
//	                                prints "Ctrl-Alt-Del ignored" on the console)
//	FAKEFC_IGNORE_SIGTERM=1         ignore SIGTERM and SIGINT, saying so on stderr; only SIGKILL
//	                                stops the fake
//	FAKEFC_VSOCK_GREETING=<text>    send text right after "OK <hostport>\n", in the same write
//	FAKEFC_VSOCK_SILENT=1           answer every CONNECT with OK, then swallow the bytes and never
//	                                answer (a guest whose agent hangs)
//	FAKEFC_START_DELAY=<duration>   InstanceStart takes this long
//	FAKEFC_GUEST_CMD=<shell>        the fake guest, started at InstanceStart
//	FAKEFC_GUEST_DIR=<dir>          where guest vsock listeners live (see above)
//	FAKEFC_READY_FD=<n>             write "ready\n" to inherited descriptor n, and close it, once
//	                                the startup is over (the API socket, if any, accepts connections)
//
// Durations use Go's syntax (time.ParseDuration), e.g. "250ms".
package main
