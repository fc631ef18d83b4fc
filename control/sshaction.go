package control

import (
	"encoding/json"
	"net/http"

	"tailscale.com/tailcfg"
)

// sshCheckRejection is what a client shows for an SSH session under a
// "check" rule. tailscaled prints it as the SSH auth banner and closes the
// connection.
const sshCheckRejection = "tailscale: this SSH rule needs a check (interactive login), " +
	"which this tailplane server does not support yet; ask the tailnet's admin to use action \"accept\"\n"

// serveSSHAction answers the callback of SSH "check" rules
// (GET /machine/ssh/action/{src}/to/{dst}?local_user=...), which
// tailscaled calls over Noise while it holds the session. Checking needs
// interactive login, which tailplane does not have, so every session is
// rejected with a message the client shows. Any other answer (a 404)
// makes tailscaled retry for half an hour while the user's ssh hangs.
// lint and the sync loop refuse configs with "check" rules; this covers
// one applied before they did. The answer is the same for every caller
// and reveals nothing, so it needs no node lookup.
func (s *Server) serveSSHAction(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tailcfg.SSHAction{Reject: true, Message: sshCheckRejection})
}
