package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tailplane/tailplane/login"
)

// Login is one open interactive login, as GET /api/v1/logins lists it.
// Its URL is a secret of the person logging in and is never listed.
type Login struct {
	ID      string    `json:"id"`      // what `tailplane logins approve` takes
	Device  string    `json:"device"`  // the device's hostname and OS, as it says
	Machine string    `json:"machine"` // its machine key
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
}

// ApproveRequest is the body of POST /api/v1/logins/{id}/approve.
type ApproveRequest struct {
	User string `json:"user"` // a login declared under users
}

// ApproveResponse is its answer.
type ApproveResponse struct {
	ID   string `json:"id"`
	User string `json:"user"`
}

const errLoginOff = "interactive login is not running on this server"

func (a *api) logins(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Logins == nil {
		httpError(w, http.StatusNotFound, errLoginOff)
		return
	}
	pending, err := a.cfg.Logins.List(r.Context())
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := []Login{}
	for _, p := range pending {
		out = append(out, Login{ID: p.ID, Device: p.Device, Machine: p.Machine, Started: p.Started, Expires: p.Expires})
	}
	writeJSON(w, out)
}

// approveLogin completes the login {id} as a declared user; every call
// that passed the role check and has a well-formed body is audited.
func (a *api) approveLogin(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Logins == nil {
		httpError(w, http.StatusNotFound, errLoginOff)
		return
	}
	var req ApproveRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || strings.TrimSpace(req.User) == "" {
		httpError(w, http.StatusBadRequest, `the body must be {"user": "LOGIN"} with a login declared under users`)
		return
	}
	id := r.PathValue("id")
	err := a.cfg.Logins.Approve(r.Context(), id, req.User)
	if !a.recorded(w, r, fmt.Sprintf("approve login %s as %s", id, req.User), err) {
		return
	}
	switch {
	case err == nil:
		writeJSON(w, ApproveResponse{ID: id, User: req.User})
	case errors.Is(err, login.ErrUndeclared):
		httpError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, login.ErrUnknown):
		httpError(w, http.StatusNotFound, err.Error()+" (hint: `tailplane logins list` shows the open ones)")
	default: // completed, expired or canceled
		httpError(w, http.StatusConflict, err.Error())
	}
}
