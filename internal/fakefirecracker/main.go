package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "Arguments parsing error: %v\n\nFor more information try --help.\n", err)
		os.Exit(1)
	}
	if err != nil || opts.help {
		fmt.Fprintf(os.Stdout, "Firecracker v%s (fake)\nUsage: firecracker [--api-sock PATH] [--config-file FILE] [--no-api] ...\n", version)
		os.Exit(0)
	}
	if opts.version {
		fmt.Fprintf(os.Stdout, "Firecracker v%s\n", version)
		os.Exit(0)
	}
	sw, err := readSwitches()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	handleSignals(sw)
	if err := run(opts, sw); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		exit(1)
	}
	sw.signalReady()
	select {} // until a signal, SendCtrlAltDel or the guest ends the process
}

// handleSignals makes SIGTERM and SIGINT exit 0, or ignores them when
// FAKEFC_IGNORE_SIGTERM=1 (the handler stays installed, so that children do
// not inherit ignored signals), saying so on stderr.
func handleSignals(sw *switches) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for sig := range ch {
			if !sw.ignoreSigterm {
				exit(0)
			}
			fmt.Fprintf(os.Stderr, "fake: %v ignored (FAKEFC_IGNORE_SIGTERM)\n", sig)
		}
	}()
}

// run starts the fake: the API socket, then the configuration file.
func run(opts *options, sw *switches) error {
	v := newVMM(opts, sw)
	if err := v.startupChecks(); err != nil {
		return err
	}
	if sw.noSocket {
		return nil
	}
	var ln *net.UnixListener
	if !opts.noAPI {
		if sw.socketDelay > 0 {
			time.Sleep(sw.socketDelay)
		}
		var err error
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: opts.apiSock, Net: "unix"})
		if err != nil {
			return fmt.Errorf("Failed to open the API socket at: %s. Check that it is not already used. (%s)", opts.apiSock, errnoText(err))
		}
		ln.SetUnlinkOnClose(false)
	}
	if opts.configFile != "" {
		if err := v.bootFromFile(opts.configFile); err != nil {
			return fmt.Errorf("Building VMM configured from cmdline json failed: %v", err)
		}
	}
	if ln != nil {
		go serveAPI(ln, v)
	}
	return nil
}

// startupChecks opens what the flags name, as Firecracker does at startup.
func (v *vmm) startupChecks() error {
	if v.opts.logPath != "" {
		sink, err := openLogSink(v.opts.logPath, v.opts.level, v.opts.showLevel, v.opts.showLogOrigin, v.opts.id)
		if err != nil {
			return fmt.Errorf("Failed to initialize the logger: %v", err)
		}
		v.logger = sink
		v.logger.info("Running Firecracker v" + version)
	}
	if v.opts.seccompFilter != "" {
		if err := openCheck(v.opts.seccompFilter, os.O_RDONLY); err != nil {
			return fmt.Errorf("Seccomp error: Failed to open the seccomp filter file: %v", err)
		}
	}
	if v.opts.metadata != "" {
		b, err := os.ReadFile(v.opts.metadata)
		if err != nil {
			return fmt.Errorf("Unable to open or read from the mmds content file: %v", err)
		}
		if !json.Valid(b) {
			return fmt.Errorf("MMDS error: the content of %s is not valid JSON", v.opts.metadata)
		}
		if uint64(len(b)) > v.opts.mmdsSizeLimit {
			return fmt.Errorf("MMDS error: the data store limit of %d bytes was exceeded", v.opts.mmdsSizeLimit)
		}
	}
	return nil
}

// bootFromFile configures the VM from a --config-file and starts it.
func (v *vmm) bootFromFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("Unable to read the config file %s: %v", path, err)
	}
	var cfg configFile
	if err := decodeStrict(b, &cfg); err != nil {
		return err
	}
	for name, raw := range map[string]json.RawMessage{
		"balloon": cfg.Balloon, "cpu-config": cfg.CPUConfig, "mmds-config": cfg.MmdsConfig, "entropy": cfg.Entropy,
		"pmem": cfg.Pmem, "serial": cfg.Serial, "memory-hotplug": cfg.MemoryHotplug,
	} {
		if len(raw) > 0 && string(raw) != "null" {
			return fmt.Errorf("fake firecracker: %q in the config file is not implemented by this fake", name)
		}
	}
	if err := v.injectedInFile(&cfg); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if cfg.Logger != nil {
		if err := v.putLoggerLocked(cfg.Logger); err != nil {
			return err
		}
	}
	if cfg.Metrics != nil {
		if err := v.putMetricsLocked(cfg.Metrics); err != nil {
			return err
		}
	}
	if cfg.MachineConfig != nil {
		if err := v.putMachineConfigLocked(cfg.MachineConfig, false); err != nil {
			return err
		}
	}
	if cfg.BootSource != nil {
		if err := v.putBootSourceLocked(cfg.BootSource); err != nil {
			return err
		}
	}
	for i := range cfg.Drives {
		d := &cfg.Drives[i]
		if err := checkDrive(d); err != nil {
			return err
		}
		if err := v.putDriveLocked(d); err != nil {
			return err
		}
	}
	for i := range cfg.NetworkInterfaces {
		n := &cfg.NetworkInterfaces[i]
		if err := require(field("host_dev_name", n.HostDevName), field("iface_id", n.IfaceID)); err != nil {
			return err
		}
		if err := v.putNetworkInterfaceLocked(n); err != nil {
			return err
		}
	}
	if cfg.Vsock != nil {
		if err := v.putVsockLocked(cfg.Vsock); err != nil {
			return err
		}
	}
	return v.instanceStartLocked()
}

// injectedInFile applies FAKEFC_FAIL to a --config-file: each section counts
// as the API call it stands for (PUT /machine-config, PUT /drives/<id>, ...,
// and PUT /actions for the InstanceStart that follows), so that a test can
// make the boot from a file fail at the step it names.
func (v *vmm) injectedInFile(cfg *configFile) error {
	var paths []string
	if cfg.Logger != nil {
		paths = append(paths, "/logger")
	}
	if cfg.Metrics != nil {
		paths = append(paths, "/metrics")
	}
	if cfg.MachineConfig != nil {
		paths = append(paths, "/machine-config")
	}
	if cfg.BootSource != nil {
		paths = append(paths, "/boot-source")
	}
	for _, d := range cfg.Drives {
		if d.DriveID != nil {
			paths = append(paths, "/drives/"+*d.DriveID)
		}
	}
	for _, n := range cfg.NetworkInterfaces {
		if n.IfaceID != nil {
			paths = append(paths, "/network-interfaces/"+*n.IfaceID)
		}
	}
	if cfg.Vsock != nil {
		paths = append(paths, "/vsock")
	}
	for _, p := range append(paths, "/actions") {
		if err := v.injected(p); err != nil {
			return err
		}
	}
	return nil
}
