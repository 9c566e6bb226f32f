package ls

// SetMaxSummaries sets the budget of leaf summaries a listing keeps, until
// the returned function restores it.
func SetMaxSummaries(n int64) (restore func()) {
	old := maxSummaries
	maxSummaries = n
	return func() { maxSummaries = old }
}

// SetMaxLogBytes sets the budget of run logs a listing keeps, until the
// returned function restores it.
func SetMaxLogBytes(n int) (restore func()) {
	old := maxLogBytes
	maxLogBytes = n
	return func() { maxLogBytes = old }
}

// LogChunkBytes is the size of the chunks run logs are written in.
const LogChunkBytes = logChunkBytes
