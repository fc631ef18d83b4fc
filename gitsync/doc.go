// Package gitsync follows the Git repository (or local directory) that
// declares a tailnet and emits one Revision per new commit.
//
// A Repo polls a remote over https, ssh, file:// or a local path with
// go-git. Each check first lists the remote's refs (like git ls-remote) and
// fetches only when the branch head moved. Fetches are shallow (depth 1)
// with a forcing refspec, so a force push is followed to the new head; when
// the object store cannot be updated in place (a damaged cache, a server
// that cannot serve shallow packs) it is replaced by an empty one and the
// head fetched afresh, and every 64 fetches the store starts afresh anyway,
// since go-git never garbage collects.
//
// Fetched packs are read as a stream (objectStore.ingest): objects up to
// 16 MiB are kept, larger ones only hashed, so a compression bomb costs no
// memory, and a config file over the limit is refused by name before it is
// read. With verification on, the head commit is checked as soon as it
// arrives, before its files are transferred.
//
// No credential reaches a log line, an error or Status: URLs with user
// info are refused, and each check's errors and log lines are redacted of
// the secrets it read.
//
// A Revision's FS reads the config tree straight from Git objects, without
// a checkout. The trees and blobs below Config.Path are copied into a
// private in-memory object store when the revision is made, so an emitted
// revision never changes and may be read from any goroutine while the loop
// keeps fetching. Symlinks inside the tree are followed.
//
// Errors come in two kinds (see ErrorKind). ErrRetry (network, server,
// credentials, timeouts) makes the loop back off exponentially from the
// poll interval, capped by Config.MaxBackoff, and try again; ErrNeedsCommit
// (a signature that does not verify, a --path missing from the tree) is
// reported for that commit, which is never emitted, and stays in
// Status.Err until the branch moves or the trusted key files change.
//
// With Config.VerifyKeyring or Config.VerifyAllowedSigners set, every head
// must be signed: OpenPGP signatures are checked against the keyring and
// SSH signatures (git's gpg.format=ssh) against the allowed signers file.
// Unsigned commits and commits signed by other keys are refused.
//
// A Dir watches a local directory with fsnotify (recursively, debounced)
// and emits revisions whose FS is an in-memory snapshot of the files, with
// an ID derived from their content, so identical content emits nothing.
//
// WebhookHandler verifies X-Hub-Signature-256 push webhooks and calls
// Trigger, so a push is applied without waiting for the next poll.
//
// Each loop is owned by its value: the constructor starts it, Close cancels
// it and waits for it to finish, and one goroutine owns all its state.
// Changed returns a channel closed at the next change of Status, so a
// waiter (pipeline.Wait) needs no polling.
package gitsync
