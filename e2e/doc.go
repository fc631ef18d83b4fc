// Package e2e holds tailplane's GitOps integration tests: a real Git remote (file:// and smart HTTP through git-http-backend), the sync loop, the coordination server and tsnet nodes, all in one process.
package e2e
