package rmap

// SetChunkBits sets the size of the chunks Map collects entries in, for
// tests that make chunk boundaries fall everywhere; it returns a function
// that puts the old size back.
func SetChunkBits(b uint) (restore func()) {
	old := chunkBits
	chunkBits = b
	return func() { chunkBits = old }
}
