//go:build tools

// Package tools pins Prometheus and promtool, which vaultbridge's alerting-rule and dashboard
// tests run. `go build github.com/prometheus/prometheus/cmd/prometheus` (and cmd/promtool)
// from this module builds exactly the pinned release.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
