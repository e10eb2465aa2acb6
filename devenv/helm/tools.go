//go:build tools

// Package tools pins the Helm CLI that vaultbridge's chart tests lint and render with.
// `go build helm.sh/helm/v3/cmd/helm` from this module builds exactly the pinned release.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
