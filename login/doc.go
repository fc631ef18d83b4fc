// Package login runs interactive logins: a device that registers without an
// auth key gets a pending login with a single-use, unguessable,
// short-lived URL; a person opens it and either signs in at the configured
// OpenID Connect provider (authorization code flow with PKCE, state and
// nonce checked, email_verified required) or, without a provider, reads a
// short login ID an admin approves. Each pending login is bound to the
// machine identity that started it and completes once, as a declared user.
//
// Pending logins are kept in the store (Config.Store), never with a
// credential in plain form, so that replicas on one database share them:
// a login completes on whichever replica the browser or the admin reaches,
// and the Wait on another replica reads it again when told (Changed, from
// the replica package's login notification) or at its next poll.
//
// Control's registration (RegisterResponse.AuthURL and the Followup
// long-poll) uses Start and Wait; docs/login.md says what is wired up.
package login
