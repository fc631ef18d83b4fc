package admin

import (
	"net/http"
)

// GET /api/v1/replicas: every replica on the server's PostgreSQL database
// (replica.Status): address, nodes streaming to it, lease, which one
// applies revisions and which applied the latest. A server on SQLite has
// none and answers 404. GET /api/v1/status includes the same.
func (a *api) replicas(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Replicas == nil {
		httpError(w, http.StatusNotFound, "this server keeps its state in SQLite and has no replicas (replicas share a PostgreSQL database: serve --database)")
		return
	}
	st, err := a.cfg.Replicas(r.Context())
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "reading the replicas: "+err.Error())
		return
	}
	writeJSON(w, st)
}
