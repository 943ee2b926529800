package wire

// ServiceName is the agent's service in every request.
const ServiceName = "petty.agent.v1.Agent"

// The agent's methods. Ping, Stat, ListDir, Shutdown and Refresh are unary: the
// request frame carries the request message, the response frame the
// response. Exec, ReadFile and WriteFile are streams: the request frame has
// FlagRemoteOpen and no payload, the messages of both sides follow as data
// frames under credit-based flow control (see OutputWindow), and the agent
// ends the stream with a response frame carrying the status.
const (
	MethodPing      = "Ping"
	MethodStat      = "Stat"
	MethodListDir   = "ListDir"
	MethodShutdown  = "Shutdown"
	MethodExec      = "Exec"
	MethodReadFile  = "ReadFile"
	MethodWriteFile = "WriteFile"
	// MethodRefresh (unary) makes a VM restored from a snapshot its own
	// machine: RNG reseed, wall clock, host name.
	MethodRefresh = "Refresh"
)

// DefaultPort is the AF_VSOCK port petty-agent listens on by default.
const DefaultPort = 1024
