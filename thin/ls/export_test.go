package ls

// SetMaxSummaries sets the budget of leaf summaries a listing keeps, until
// the returned function restores it.
func SetMaxSummaries(n int64) (restore func()) {
	old := maxSummaries
	maxSummaries = n
	return func() { maxSummaries = old }
}
