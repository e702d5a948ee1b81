// Helper module that turns the OSV files of a golang.org/x/vulndb module
// version (data/osv/*.json) into the Go vulnerability database's v1 layout,
// so govulncheck can run offline with -db file://DIR. Kept apart from the
// receiver's go.mod.
module github.com/otelcol-dora/dorareceiver/tools/vulndb

go 1.26.0

require golang.org/x/mod v0.42.0
