package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"tailscale.com/tailcfg"
)

// serveFeatureQuery handles POST /machine/feature/query over Noise. The
// CLI asks it how to turn on a feature the node lacks the capability for
// (`tailscale serve --https`, `tailscale funnel`) and prints the answer's
// Text; tailplane turns features on only through the tailnet config, so
// the answer says which setting, and never asks the CLI to wait.
func (s *Server) serveFeatureQuery(w http.ResponseWriter, r *http.Request) {
	mkey := machineKeyOf(r)
	var req tailcfg.QueryFeatureRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSetDNSBytes)).Decode(&req); err != nil {
		http.Error(w, "tailplane: request body is not a JSON QueryFeatureRequest", http.StatusBadRequest)
		return
	}
	var resp tailcfg.QueryFeatureResponse
	err := s.do(r.Context(), func(w *world) error {
		if _, err := w.noiseNode(mkey, req.NodeKey); err != nil {
			return err
		}
		resp = w.featureAnswer(req.Feature)
		return nil
	})
	if err != nil {
		code := http.StatusServiceUnavailable
		var me *mapError
		if errors.As(err, &me) {
			code = me.code
		}
		http.Error(w, "tailplane: "+err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// featureAnswer says whether feature is on for the tailnet, or how its
// admin turns it on.
func (w *world) featureAnswer(feature string) tailcfg.QueryFeatureResponse {
	switch feature {
	case "serve":
		if w.tailnet.DNS.HTTPS {
			return tailcfg.QueryFeatureResponse{Complete: true}
		}
		return tailcfg.QueryFeatureResponse{Text: "HTTPS certificates are off for this tailnet.\n" +
			"Its admin turns them on with \"dns\": {\"https\": true} in the tailnet config and runs tailplane serve with --dns-listen or --dns-provider (see docs/https.md in tailplane)."}
	case "funnel":
		return tailcfg.QueryFeatureResponse{Text: "tailplane does not offer Funnel: nodes cannot be reached from the internet through it."}
	}
	return tailcfg.QueryFeatureResponse{Text: fmt.Sprintf("tailplane does not offer the feature %q.", feature)}
}
