// Package franz pins franz-go, whose own integration tests (pkg/kgo) tests/tests/franz_go.rs
// runs against Weir brokers: `go test github.com/twmb/franz-go/pkg/kgo -run ...` from this
// module. Nothing here is shipped.
package franz

import _ "github.com/twmb/franz-go/pkg/kgo"
