package pg

// SetStepHook lets the external tests stop an operation right after a
// journal step is written, as if the process died there. It returns a
// function that removes the hook.
func SetStepHook(f func(Step)) func() {
	stepHook = f
	return func() { stepHook = nil }
}

// SetAdoptHook lets the external tests stop an adoption right after the
// new settings are set, as if the process died there.
func SetAdoptHook(f func()) func() {
	adoptHook = f
	return func() { adoptHook = nil }
}
