package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

const (
	version               = "1.16.1"
	defaultAPISock        = "/run/firecracker.socket"
	defaultInstanceID     = "anonymous-instance"
	defaultMaxPayloadSize = 51200
	defaultMmdsSizeLimit  = 51200
)

// options are the command-line flags, named as Firecracker names them.
type options struct {
	apiSock        string
	id             string
	configFile     string
	logPath        string
	level          string
	showLevel      bool
	showLogOrigin  bool
	bootTimer      bool
	noSeccomp      bool
	seccompFilter  string
	noAPI          bool
	metadata       string
	maxPayloadSize uint64
	mmdsSizeLimit  uint64
	enablePCI      bool
	version        bool
	help           bool
	// Passed by the jailer; accepted and ignored.
	startTimeUS, startTimeCPUUS, parentCPUTimeUS uint64
}

// parseFlags parses args (without the program name). Like Firecracker it
// takes --flag value; -flag and --flag=value are accepted too. Errors are
// returned, not printed.
func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("firecracker", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // main prints the error, without the usage
	fs.Usage = func() {}
	fs.StringVar(&o.apiSock, "api-sock", defaultAPISock, "path to the API unix socket")
	fs.StringVar(&o.id, "id", defaultInstanceID, "microVM id")
	fs.StringVar(&o.configFile, "config-file", "", "JSON configuration to boot from")
	fs.StringVar(&o.logPath, "log-path", "", "log file")
	fs.StringVar(&o.level, "level", "Info", "log level")
	fs.BoolVar(&o.showLevel, "show-level", false, "log the level")
	fs.BoolVar(&o.showLogOrigin, "show-log-origin", false, "log the origin")
	fs.BoolVar(&o.bootTimer, "boot-timer", false, "log the guest boot time")
	fs.BoolVar(&o.noSeccomp, "no-seccomp", false, "disable seccomp")
	fs.StringVar(&o.seccompFilter, "seccomp-filter", "", "custom seccomp filter")
	fs.BoolVar(&o.noAPI, "no-api", false, "do not start the API server (needs --config-file)")
	fs.StringVar(&o.metadata, "metadata", "", "MMDS contents (JSON file)")
	fs.Uint64Var(&o.maxPayloadSize, "http-api-max-payload-size", defaultMaxPayloadSize, "maximum API request body size")
	fs.Uint64Var(&o.mmdsSizeLimit, "mmds-size-limit", defaultMmdsSizeLimit, "maximum MMDS size")
	fs.BoolVar(&o.enablePCI, "enable-pci", false, "use PCI devices")
	fs.BoolVar(&o.version, "version", false, "print the version")
	fs.BoolVar(&o.help, "help", false, "print the usage")
	fs.Uint64Var(&o.startTimeUS, "start-time-us", 0, "set by the jailer")
	fs.Uint64Var(&o.startTimeCPUUS, "start-time-cpu-us", 0, "set by the jailer")
	fs.Uint64Var(&o.parentCPUTimeUS, "parent-cpu-time-us", 0, "set by the jailer")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("Found argument '%s' which wasn't expected, or isn't valid in this context.", fs.Arg(0))
	}
	if o.help || o.version {
		return o, nil
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *options) validate() error {
	if o.noAPI && o.configFile == "" {
		return errors.New("Argument 'no-api' requires argument 'config-file' to be present.")
	}
	if o.noSeccomp && o.seccompFilter != "" {
		return errors.New("Argument 'no-seccomp' cannot be used together with argument 'seccomp-filter'.")
	}
	if err := checkInstanceID(o.id); err != nil {
		return err
	}
	if _, ok := parseLevel(o.level); !ok {
		return fmt.Errorf("Invalid value for logger level: %s. Possible values: [Error, Warning, Info, Debug, Trace, Off]", o.level)
	}
	return nil
}

// checkInstanceID applies Firecracker's rule for --id.
func checkInstanceID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("Invalid instance ID: invalid len (%d);  the length must be between 1 and 64", len(id))
	}
	for i, r := range id {
		if r != '-' && !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("Invalid instance ID: invalid char (%c) at position %d", r, i)
		}
	}
	return nil
}

var logLevels = []string{"Off", "Error", "Warning", "Info", "Debug", "Trace"}

// parseLevel returns the level's rank (Off = 0) for a case-insensitive name.
func parseLevel(s string) (int, bool) {
	for i, l := range logLevels {
		if strings.EqualFold(s, l) {
			return i, true
		}
	}
	return 0, false
}
