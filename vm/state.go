package vm

// State is a Machine's lifecycle state.
type State int

const (
	// Created: New returned; no VMM has been started yet.
	Created State = iota
	// Starting: Start is spawning and configuring the VMM.
	Starting
	// Running: the guest has been started.
	Running
	// Paused: the guest's vCPUs are paused.
	Paused
	// Stopped: the VMM process has exited and been reaped; Start boots it again.
	Stopped
	// Destroyed: Destroy removed every resource; the Machine is unusable.
	Destroyed
)

var stateNames = [...]string{"created", "starting", "running", "paused", "stopped", "destroyed"}

// String returns the state's lower-case name.
func (s State) String() string {
	if int(s) < len(stateNames) && s >= 0 {
		return stateNames[s]
	}
	return "unknown"
}
