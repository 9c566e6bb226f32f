module github.com/thinmeta/thinmeta

go 1.26.0

require (
	github.com/cockroachdb/datadriven v1.0.3
	github.com/pierrec/lz4/v4 v4.1.33
	golang.org/x/sys v0.50.0
	pgregory.net/rapid v1.3.0
)

require github.com/pmezard/go-difflib v1.0.0 // indirect
