package thin

// SetMaxImageSize lowers the bound on decompressed images for a test and
// returns the function that restores it.
func SetMaxImageSize(n int64) func() {
	old := maxImageSize
	maxImageSize = n
	return func() { maxImageSize = old }
}
