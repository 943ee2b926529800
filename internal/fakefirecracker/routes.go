package main

import (
	"strings"
)

// unimplemented lists the Firecracker v1.16.1 endpoints the fake does not
// implement; they answer 400 with a message that says so.
var unimplemented = map[string][]string{
	"/balloon":                {"GET", "PUT", "PATCH"},
	"/balloon/statistics":     {"GET", "PATCH"},
	"/balloon/hinting/start":  {"PATCH"},
	"/balloon/hinting/status": {"GET"},
	"/balloon/hinting/stop":   {"PATCH"},
	"/cpu-config":             {"PUT"},
	"/pmem/":                  {"PUT", "PATCH"},
	"/mmds":                   {"GET", "PUT", "PATCH"},
	"/mmds/config":            {"PUT"},
	"/entropy":                {"PUT"},
	"/serial":                 {"PUT"},
	"/hotplug/memory":         {"GET", "PUT", "PATCH"},
}

// handle answers one API request.
func (v *vmm) handle(method, path string, body []byte) response {
	if err := v.injected(path); err != nil {
		return faultResponse(err)
	}
	if (method == "PUT" || method == "PATCH") && len(body) == 0 {
		return faultResponse(faultf("Empty %s request.", method))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.logger != nil {
		v.logger.info("The API server received a " + method + " request on \"" + path + "\".")
	}
	res, ok := v.route(method, path, body)
	if !ok {
		key := path
		if strings.HasPrefix(path, "/pmem/") {
			key = "/pmem/"
		}
		for _, m := range unimplemented[key] {
			if m == method {
				return faultResponse(faultf("fake firecracker: %s %s exists in Firecracker v1.16.1 but is not implemented by this fake.", method, path))
			}
		}
		return faultResponse(faultf("Invalid request method and/or path: %s %s.", method, path))
	}
	return res
}

// injected is FAKEFC_FAIL: the "injected failure" fault for an API path (or
// the part of a --config-file that stands for it) containing the switch's
// value, nil otherwise.
func (v *vmm) injected(path string) error {
	if v.sw.fail != "" && strings.Contains(path, v.sw.fail) {
		return faultf("injected failure")
	}
	return nil
}

// route dispatches a request; ok is false for an unknown method and path.
func (v *vmm) route(method, path string, body []byte) (res response, ok bool) {
	ok = true
	switch {
	case path == "/" && method == "GET":
		res = jsonResponse(instanceInfo{ID: v.opts.id, State: v.state, VmmVersion: version, AppName: "Firecracker"})
	case path == "/version" && method == "GET":
		res = jsonResponse(firecrackerVersion{FirecrackerVersion: version})
	case path == "/machine-config" && method == "GET":
		res = jsonResponse(v.machine)
	case path == "/machine-config" && (method == "PUT" || method == "PATCH"):
		res = apply(body, func(in *machineConfig) error { return v.putMachineConfigLocked(in, method == "PATCH") })
	case path == "/vm/config" && method == "GET":
		res = jsonResponse(v.vmConfigLocked())
	case path == "/boot-source" && method == "PUT":
		res = apply(body, v.putBootSourceLocked)
	case path == "/logger" && method == "PUT":
		res = apply(body, v.putLoggerLocked)
	case path == "/metrics" && method == "PUT":
		res = apply(body, v.putMetricsLocked)
	case path == "/vsock" && method == "PUT":
		res = apply(body, v.putVsockLocked)
	case path == "/actions" && method == "PUT":
		res = apply(body, v.actionLocked)
	case path == "/vm" && method == "PATCH":
		res = apply(body, v.patchVMLocked)
	case path == "/snapshot/create" && method == "PUT":
		res = apply(body, v.createSnapshotLocked)
	case path == "/snapshot/load" && method == "PUT":
		res = apply(body, v.loadSnapshotLocked)
	default:
		if id, found := strings.CutPrefix(path, "/drives/"); found && id != "" && !strings.Contains(id, "/") {
			switch method {
			case "PUT":
				return apply(body, func(in *drive) error {
					if err := checkDrive(in); err != nil {
						return err
					}
					if *in.DriveID != id {
						return faultf(msgIDMismatch)
					}
					return v.putDriveLocked(in)
				}), true
			case "PATCH":
				return apply(body, func(in *partialDrive) error {
					if err := require(field("drive_id", in.DriveID)); err != nil {
						return err
					}
					if err := checkRateLimiter(in.RateLimiter); err != nil {
						return err
					}
					if *in.DriveID != id {
						return faultf(msgIDMismatch)
					}
					return v.patchDriveLocked(in)
				}), true
			}
		}
		if id, found := strings.CutPrefix(path, "/network-interfaces/"); found && id != "" && !strings.Contains(id, "/") {
			switch method {
			case "PUT":
				return apply(body, func(in *networkInterface) error {
					if err := require(field("host_dev_name", in.HostDevName), field("iface_id", in.IfaceID)); err != nil {
						return err
					}
					if err := checkRateLimiter(in.RxRateLimiter); err != nil {
						return err
					}
					if err := checkRateLimiter(in.TxRateLimiter); err != nil {
						return err
					}
					if *in.IfaceID != id {
						return faultf(msgIDMismatch)
					}
					return v.putNetworkInterfaceLocked(in)
				}), true
			case "PATCH":
				return apply(body, func(in *partialNetworkInterface) error {
					if err := require(field("iface_id", in.IfaceID)); err != nil {
						return err
					}
					if err := checkRateLimiter(in.RxRateLimiter); err != nil {
						return err
					}
					if err := checkRateLimiter(in.TxRateLimiter); err != nil {
						return err
					}
					if *in.IfaceID != id {
						return faultf(msgIDMismatch)
					}
					return v.patchNetworkInterfaceLocked(in)
				}), true
			}
		}
		ok = false
	}
	return res, ok
}

// apply decodes body strictly into a new T and runs fn on it: 204 on
// success, 400 with the fault otherwise.
func apply[T any](body []byte, fn func(*T) error) response {
	in := new(T)
	if err := decodeStrict(body, in); err != nil {
		return faultResponse(err)
	}
	if err := fn(in); err != nil {
		return faultResponse(err)
	}
	return noContent()
}

func (v *vmm) actionLocked(in *instanceActionInfo) error {
	if err := require(field("action_type", in.ActionType)); err != nil {
		return err
	}
	if err := checkEnum("action_type", in.ActionType, "FlushMetrics", "InstanceStart", "SendCtrlAltDel"); err != nil {
		return err
	}
	switch *in.ActionType {
	case "InstanceStart":
		return v.instanceStartLocked()
	case "SendCtrlAltDel":
		return v.sendCtrlAltDelLocked()
	default:
		return v.flushMetricsLocked()
	}
}
