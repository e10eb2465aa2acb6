//go:build tools

// Package controlplane pins the commands vaultbridge's dev environment builds.
// The build tag keeps this file out of every build; it exists so that
// `go mod tidy` keeps the modules these commands need.
package controlplane

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
