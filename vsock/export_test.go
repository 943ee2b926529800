package vsock

// SetTestHookRetry makes DialRetry call f with each failed attempt it is
// about to retry, until the returned function restores the previous hook.
// Set it before DialRetry starts.
func SetTestHookRetry(f func(error)) (restore func()) {
	old := testHookRetry
	testHookRetry = f
	return func() { testHookRetry = old }
}
