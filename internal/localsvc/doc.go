// Package localsvc starts throwaway local services as child processes:
// a PostgreSQL cluster (StartPostgres) and HAProxy in TCP mode
// (StartHAProxy). Tests reach them through internal/testkit, which ties
// them to a testing.TB; the load generator (cmd/tailplane-loadtest) uses
// them directly. Everything listens on 127.0.0.1 only, and a missing
// program is an error that says how to install it.
package localsvc
