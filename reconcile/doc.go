// Package reconcile diffs a desired tailnet against the applied state in the store, renders the plan, and applies it atomically.
//
// # Objects
//
// A Tailnet is flattened by Desired into Objects (kind, name, canonical
// JSON value), one per thing a person would name in a review:
//
//	tailnet settings             the `tailnet` key
//	dns settings                 `dns` without its records
//	dnsRecord "<name> <type> <value>"   one per record
//	user <login>, authKey <name>, apiKey <name>
//	route <node name or tag:x>   approved routes
//	group, tagOwner, host, ipset, posture <name>   one per policy map entry
//	policy <key>                 every other policy key as a whole: acls,
//	                             grants, autoApprovers, ssh, nodeAttrs, tests,
//	                             sshTests, randomizeClientPort, disableIPv4,
//	                             OneCGNATRoute, derpMap
//
// Each kind is described once, in the kinds table (kinds.go), for both
// directions: how to list a Tailnet's objects of the kind with their
// canonical JSON (Desired) and how to set one back into a Tailnet
// (LoadApplied). The table also gives the plan order of kinds.
//
// The applied objects are kept by package store (store.ConfigObject);
// LoadApplied turns them back into a Tailnet, so a restarted server needs
// no repository. reconcile decides what to write; the store owns the SQL:
// Apply writes through one store.Update transaction, and reconcile imports
// no database/sql.
//
// # API
//
//	Desired(t *schema.Tailnet) []Object
//	Fingerprint(objs []Object) string                      // content hash, e.g. for a plain directory
//	ReadApplied(ctx, stateDir) ([]Object, []Node, error)   // missing state dir: empty, creates nothing
//	ReadStore(ctx, st) ([]Object, []Node, error)
//	Diff(applied, desired []Object) *Plan
//	(*Plan).AssessImpact(nodes []Node)                     // effects on registered nodes
//	(*Plan).Empty() bool, Counts() (add, change, destroy int), Summary() string
//	(*Plan).WriteText(w) error, WriteJSON(w) error          // secrets masked; see docs/plan.md
//	MaskSecrets(objs []Object) []Object                    // secret hashes shortened as plans show them
//	PlanStore(ctx, st, t) (*Plan, error)
//	Apply(ctx, st, t, rev Revision) (*Plan, error)         // one store transaction; records rev
//	LoadApplied(ctx, st) (*schema.Tailnet, error)
//	SetApplyHook(f func(step string) error)                // crash injection for tests
//
// The revisions Apply recorded, and their plans, are read from the store
// (store.Store's Revisions, LatestRevision and RevisionPlan).
//
// A typical plan:
//
//	applied, nodes, err := reconcile.ReadApplied(ctx, stateDir)
//	p := reconcile.Diff(applied, reconcile.Desired(t))
//	p.AssessImpact(nodes)
//	p.WriteText(os.Stdout)
//
// # Where it sits
//
// reconcile neither compiles nor tests a policy and knows no source of
// revisions. Package pipeline drives it: each revision is prepared once by
// the coordination server (control.Server.Prepare), tested there, and
// Apply records the prepared tailnet; lint and plan check a tree with
// policy.Validate before they diff it.
//
// # Errors
//
// Errors are classed for the sync pipeline. NeedsNewCommit(err) is true
// when the config itself is at fault (a *ConfigError, or
// schema.Diagnostics with errors): retrying the same commit cannot
// succeed, so keep serving the last applied state and wait for the next
// commit. RetryLater(err) is true for everything else except context
// cancellation: I/O errors, a busy or locked database, a full disk; the
// same commit may apply on a later attempt.
//
//	p, err := reconcile.Apply(ctx, st, t, reconcile.Revision{Commit: sha})
//	switch {
//	case reconcile.NeedsNewCommit(err): // report err; wait for the next commit
//	case reconcile.RetryLater(err):     // back off, then apply the same commit again
//	case err == nil:                    // serve the new state; p says what changed
//	}
package reconcile
