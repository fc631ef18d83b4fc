// Package pipeline takes each revision of the tailnet config from its source to the nodes: Source → Prepare → Test → Apply → Publish.
//
// The path of one revision, and who does each step:
//
//	gitsync.Source      Revisions(): a commit (or a directory's content) as an fs.FS
//	  │ load, validate  schema.Load: files -> *schema.Tailnet, diagnostics at file:line:col
//	  │ compile, check  Server.Prepare: the policy compiled, its derpMap merged, DNS built -> *control.Prepared
//	  │ test            Server.Test: tests and sshTests against the server's nodes under the new config
//	  │ apply           reconcile.Apply: the diff against the store, written in one transaction with the revision
//	  ▼ publish         Server.Install, then Server.WaitPropagated: every connected node was sent it
//	nodes
//
// A revision is compiled once, by Prepare; the same prepared value is
// tested, recorded and installed. A failure at any step leaves the store
// and the served config as they were, and is recorded as the Attempt,
// with its problems at file:line:col. Config errors
// (reconcile.NeedsNewCommit) wait for a new commit; other errors retry the
// same revision with capped exponential backoff.
//
// # API
//
//	New(ctx, Config{Store, Source, Server}) (*Pipeline, error)  // Server: a *control.Server
//	(*Pipeline).Sync()                  // ask the source now (webhook) and retry at once
//	(*Pipeline).Status() Status         // applied, attempted + problems, retries, source, metrics
//	(*Pipeline).Wait(ctx, cond func(Status) bool) (Status, error)  // woken by every change; no polling
//	(*Pipeline).Close() error
//
// The tailnet being served is the server's (control.Server.Tailnet), not
// the pipeline's: there is one copy of it. Package server wires a
// Pipeline to its store, source and coordination server.
package pipeline
