module github.com/thinmeta/thinmeta

go 1.26.0

require (
	github.com/pierrec/lz4/v4 v4.1.33
	golang.org/x/sys v0.50.0 // indirect
	pgregory.net/rapid v1.3.0
)
