//go:build tools

// Package vaultserver pins the HashiCorp Vault Community Edition server that
// vaultbridge's dev/test environment builds (`vaultbridge dev up --vault-server hashicorp`).
// The build tag keeps this file out of every build; it exists so that
// `go mod tidy` keeps the modules the command needs.
package vaultserver

import (
	_ "github.com/hashicorp/vault"
)
