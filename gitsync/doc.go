// Package gitsync follows the Git repository (or local directory) that
// declares a tailnet and emits one Revision per new commit.
//
// A Repo polls a remote over https, ssh, file:// or a local path with
// go-git. Each poll first lists the remote's refs (cheap, like
// git ls-remote) and fetches only when the branch head moved; fetches are
// shallow (depth 1), and when the local object store cannot be updated in
// place (history rewritten by a force push, a corrupt cache, a server that
// cannot serve shallow packs) the store is discarded and the head fetched
// afresh, so a force push is always followed to the new head.
//
// A Revision's FS reads the config tree straight from Git objects (no
// checkout). The objects below Config.Path are copied into a private,
// immutable in-memory store when the revision is made, so an emitted
// revision never changes and can be read from any goroutine while the loop
// keeps fetching.
//
// Errors come in two kinds (see ErrorKind): ErrRetry (network, server, auth
// problems) makes the loop back off exponentially, capped, and try again;
// ErrNeedsCommit (a commit whose signature does not verify, a --path missing
// from the tree) is reported once for that commit, which is never emitted,
// and the loop waits for a new head.
//
// With Config.VerifyKeyring set, every head must carry a valid OpenPGP
// signature from a key in that armored keyring; unsigned commits, commits
// signed by other keys and SSH-signed commits are refused.
//
// A Dir watches a local directory with fsnotify (recursively, debounced)
// and emits revisions whose FS is an in-memory snapshot of the files, with
// an ID derived from their content, so identical content emits nothing.
//
// WebhookHandler verifies GitHub-style X-Hub-Signature-256 webhooks and
// calls Trigger, so a push is picked up without waiting for the next poll.
//
// Every loop is owned by its value: the constructor starts it, Close
// cancels it and waits for it to finish, and a single goroutine owns the
// repository state.
package gitsync
